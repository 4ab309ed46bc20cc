"""The change log (transactional outbox) on every backend: every change of a booking or an
event is recorded in its own atomic step, in order, and only then."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core import clock
from core.storage import ManagedStorage
from core.storage.errors import SoldOut
from core.storage.records import SYSTEM_ACTOR, Actor
from core.storage.requests import ChangeQuery
from tests.support.storage import ACTOR, an_event, reserve

BUYER = Actor("user", "u1")


async def log_of(storage: ManagedStorage, subject_id: str) -> list[tuple[str, int, str]]:
    found = await storage.changes.find(ChangeQuery(subject_id=subject_id, limit=50))
    return [(c.type, c.seq, c.actor.id) for c in reversed(found)]


async def test_a_booking_records_each_of_its_changes_in_order(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=5)
    held = (await storage.bookings.reserve(reserve(event, 2, hold_seconds=60))).booking
    await storage.bookings.confirm(held.id, "u1", clock.now(), BUYER)
    await storage.bookings.cancel(held.id, None, clock.now(), Actor("admin", "boss"))
    assert await log_of(storage, held.id) == [
        ("booking.created", 1, "system"),
        ("booking.confirmed", 2, "u1"),
        ("booking.cancelled", 3, "boss"),
    ]
    created = (await storage.changes.find(ChangeQuery(subject_id=held.id, type="booking.created")))[
        0
    ]
    assert created.event_id == event.id and created.owner_id == "u1"
    assert created.data["quantity"] == 2 and created.data["status"] == "pending"
    assert created.data["unit_price_cents"] == 1500
    assert "idempotency_key" not in created.data and "request_hash" not in created.data


async def test_a_refused_booking_records_nothing(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=1)
    before = await storage.changes.find(ChangeQuery(event_id=event.id, limit=100))
    with pytest.raises(SoldOut):
        await storage.bookings.reserve(reserve(event, 2))
    assert await storage.changes.find(ChangeQuery(event_id=event.id, limit=100)) == before


async def test_event_changes_and_the_bookings_they_end(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    lapsed = (await storage.bookings.reserve(reserve(event, 1, hold_seconds=0.05))).booking
    sold = (await storage.bookings.reserve(reserve(event, 2))).booking
    await asyncio.sleep(0.1)
    await storage.events.transition(event.id, ("published",), "cancelled", clock.now(), ACTOR)
    assert [t for t, _, _ in await log_of(storage, event.id)] == [
        "event.created",
        "event.published",
        "event.cancelled",
    ]
    assert (await log_of(storage, sold.id))[-1] == ("booking.cancelled", 2, "owner")
    assert (await log_of(storage, lapsed.id))[-1] == ("booking.expired", 2, "system")


async def test_expiry_sweeps_are_recorded_as_the_systems(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    hold = (await storage.bookings.reserve(reserve(event, 1, hold_seconds=0.05))).booking
    await asyncio.sleep(0.1)
    assert await storage.bookings.release_expired(clock.now(), event.id) == 1
    assert (await log_of(storage, hold.id))[-1] == ("booking.expired", 2, SYSTEM_ACTOR.id)


async def test_batched_bookings_record_one_change_each(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=50)
    made = await asyncio.gather(
        *(
            storage.bookings.reserve(reserve(event, 1, owner=f"b{i}", key=f"k{i}"))
            for i in range(12)
        )
    )
    for reservation in made:
        assert await log_of(storage, reservation.booking.id) == [("booking.created", 1, "system")]


async def test_dispatch_marks_prunes_and_leases(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    await storage.bookings.reserve(reserve(event, 1))
    pending = await storage.changes.undispatched(limit=10_000)
    mine = [c for c in pending if c.event_id == event.id]
    assert [c.type for c in mine] == ["event.created", "event.published", "booking.created"]
    await storage.changes.mark_dispatched([c.id for c in mine], clock.now())
    left = {c.id for c in await storage.changes.undispatched(limit=10_000)}
    assert not left & {c.id for c in mine}
    now = clock.now()
    assert await storage.changes.hold_lease("dispatch-test", "a", now + timedelta(seconds=5), now)
    assert not await storage.changes.hold_lease(
        "dispatch-test", "b", now + timedelta(seconds=5), now
    )
    assert await storage.changes.hold_lease("dispatch-test", "a", now + timedelta(seconds=9), now)
    later = now + timedelta(seconds=10)
    assert await storage.changes.hold_lease(
        "dispatch-test", "b", later + timedelta(seconds=5), later
    )
    assert await storage.changes.prune(clock.now() + timedelta(days=1)) >= 3
