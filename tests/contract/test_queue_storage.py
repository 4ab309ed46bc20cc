"""An event's waiting-room settings round-trip on every backend, on create and on update."""

from __future__ import annotations

import dataclasses

from core import clock
from core.storage import ManagedStorage
from core.storage.records import new_id
from tests.support.storage import ACTOR, an_event

SETTINGS = {
    "enabled": True,
    "opensAt": "2030-01-01T10:00:00+00:00",
    "admitPerMinute": 120,
    "maxActive": None,
    "sessionSeconds": 600,
}


async def test_queue_settings_are_kept_and_changed_with_the_event(storage: ManagedStorage) -> None:
    plain = await an_event(storage)
    assert plain.queue is None
    draft = dataclasses.replace(plain, id=new_id(), status="draft", version=1, queue=SETTINGS)
    event = await storage.events.create(draft, ACTOR)
    stored = await storage.events.get(event.id)
    assert stored is not None and stored.queue == SETTINGS
    paused = SETTINGS | {"admitPerMinute": 0, "maxActive": 50}
    updated = await storage.events.update(
        event.id,
        expected_version=stored.version,
        fields={"queue": paused},
        tiers=[],
        now=clock.now(),
        actor=ACTOR,
    )
    assert updated.queue == paused and updated.version == stored.version + 1
    assert (await storage.events.get(event.id)).queue == paused  # type: ignore[union-attr]
    assert (await storage.events.get(plain.id)).queue is None  # type: ignore[union-attr]
