"""Webhook endpoints and deliveries on every backend: one delivery per (webhook, change),
claims that never lease one delivery twice, and one delivery at a time per subject."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core import clock
from core.storage import ManagedStorage
from core.storage.errors import InvalidTransition, Missing
from core.storage.records import Attempt, Delivery, Webhook, new_id


def a_webhook(owner: str = "org-1", events: tuple[str, ...] = ("*",)) -> Webhook:
    now = clock.now()
    return Webhook(
        id=new_id(),
        owner_id=owner,
        owner_role="organizer",
        url="https://hooks.example.com/in",
        events=events,
        secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
        created_at=now,
        updated_at=now,
    )


def a_delivery(webhook: Webhook, subject: str, seq: int, change_id: str | None = None) -> Delivery:
    now = clock.now()
    return Delivery(
        id=f"msg_{new_id()}",
        webhook_id=webhook.id,
        change_id=change_id or new_id(),
        type="booking.created",
        subject_id=subject,
        seq=seq,
        payload={"type": "booking.created", "timestamp": now.isoformat(), "data": {"seq": seq}},
        created_at=now,
        next_attempt_at=now,
        retry_until=now + timedelta(hours=24),
    )


def done(ok: bool = True) -> Attempt:
    now = clock.now()
    return Attempt(
        status="succeeded" if ok else "pending",
        at=now,
        next_attempt_at=now if ok else now + timedelta(hours=1),
        status_code=200 if ok else 500,
        latency_ms=12,
        error=None if ok else "HTTP 500",
    )


async def test_webhooks_are_created_found_changed_and_deleted(storage: ManagedStorage) -> None:
    hook = await storage.webhooks.create(a_webhook(events=("booking.created", "event.*")))
    assert await storage.webhooks.get(hook.id) == hook
    assert hook.wants("booking.created") and hook.wants("event.published")
    assert not hook.wants("booking.cancelled")
    mine = await storage.webhooks.find(owner_id="org-1", after_id=None, limit=100)
    assert hook.id in {h.id for h in mine}
    assert not await storage.webhooks.find(owner_id="nobody", after_id=None, limit=10)
    changed = await storage.webhooks.update(
        hook.id, {"enabled": False, "disabled_reason": "410 Gone", "events": ("*",)}, clock.now()
    )
    assert not changed.enabled and changed.disabled_reason == "410 Gone"
    assert changed.events == ("*",)
    assert hook.id not in {h.id for h in await storage.webhooks.enabled()}
    failing = await storage.webhooks.note_outcome(hook.id, False, clock.now())
    assert failing is not None and failing.failing_since is not None
    again = await storage.webhooks.note_outcome(hook.id, False, clock.now() + timedelta(hours=1))
    assert again is not None and again.failing_since == failing.failing_since
    healed = await storage.webhooks.note_outcome(hook.id, True, clock.now())
    assert healed is not None and healed.failing_since is None
    await storage.webhooks.enqueue([a_delivery(hook, "b1", 1)])
    await storage.webhooks.delete(hook.id)
    assert await storage.webhooks.get(hook.id) is None
    assert await storage.webhooks.deliveries(hook.id, before_id=None, limit=10) == []
    with pytest.raises(Missing):
        await storage.webhooks.delete(hook.id)
    with pytest.raises(Missing):
        await storage.webhooks.update(hook.id, {"enabled": True}, clock.now())


async def test_one_delivery_per_webhook_and_change(storage: ManagedStorage) -> None:
    hook = await storage.webhooks.create(a_webhook())
    change = new_id()
    first = a_delivery(hook, "b1", 1, change)
    assert await storage.webhooks.enqueue([first]) == 1
    assert await storage.webhooks.enqueue([a_delivery(hook, "b1", 1, change)]) == 0
    assert await storage.webhooks.enqueue([a_delivery(hook, "b1", 2), first]) == 1
    found = await storage.webhooks.deliveries(hook.id, before_id=None, limit=10)
    assert len(found) == 2 and found[1].id == first.id
    assert found[1].payload == first.payload


async def test_claims_never_lease_a_delivery_twice(storage: ManagedStorage) -> None:
    hook = await storage.webhooks.create(a_webhook())
    await storage.webhooks.enqueue([a_delivery(hook, f"s{i}", 1) for i in range(20)])
    now = clock.now()
    until = now + timedelta(seconds=30)
    claims = await asyncio.gather(
        *(storage.webhooks.claim(now, f"worker-{i}", until, 20) for i in range(4))
    )
    mine = [d.id for claim in claims for d in claim if d.webhook_id == hook.id]
    assert len(mine) == len(set(mine)) == 20
    assert not [
        d for d in await storage.webhooks.claim(now, "late", until, 100) if d.webhook_id == hook.id
    ]
    later = now + timedelta(seconds=31)  # the leases ended without a settle: claimable again
    again = await storage.webhooks.claim(later, "next", later + timedelta(seconds=30), 100)
    assert len([d for d in again if d.webhook_id == hook.id]) == 20


async def test_one_delivery_at_a_time_per_subject_in_order(storage: ManagedStorage) -> None:
    hook = await storage.webhooks.create(a_webhook())
    first, second = a_delivery(hook, "booking-1", 1), a_delivery(hook, "booking-1", 2)
    await storage.webhooks.enqueue([second, first])
    now = clock.now()
    until = now + timedelta(seconds=30)

    async def claimed(holder: str) -> list[str]:
        got = await storage.webhooks.claim(clock.now(), holder, until, 100)
        return [d.id for d in got if d.webhook_id == hook.id]

    assert await claimed("a") == [first.id]
    assert await claimed("b") == []  # the second waits while the first is pending
    retried = await storage.webhooks.settle(first.id, "a", done(ok=False))
    assert retried is not None and retried.attempts == 1 and retried.last_status_code == 500
    assert await claimed("b") == []  # still pending (a retry later): the second still waits
    assert await storage.webhooks.settle(first.id, "a", done()) is None  # lease released
    # the first succeeds on its next attempt
    d = await storage.webhooks.claim(now + timedelta(hours=2), "c", until + timedelta(hours=2), 100)
    assert [x.id for x in d if x.webhook_id == hook.id] == [first.id]
    ok = await storage.webhooks.settle(first.id, "c", done())
    assert ok is not None and ok.status == "succeeded" and ok.attempts == 2
    assert await claimed("d") == [second.id]


async def test_a_finished_delivery_is_retried_by_hand(storage: ManagedStorage) -> None:
    hook = await storage.webhooks.create(a_webhook())
    delivery = a_delivery(hook, "b9", 1)
    await storage.webhooks.enqueue([delivery])
    now = clock.now()
    with pytest.raises(InvalidTransition):
        await storage.webhooks.retry(hook.id, delivery.id, now, now + timedelta(hours=24))
    await storage.webhooks.claim(now, "a", now + timedelta(seconds=30), 100, delivery.id)
    await storage.webhooks.settle(delivery.id, "a", done())
    again = await storage.webhooks.retry(hook.id, delivery.id, now, now + timedelta(hours=24))
    assert again.status == "pending" and again.attempts == 1
    with pytest.raises(Missing):
        await storage.webhooks.retry("another", delivery.id, now, now)
    assert await storage.webhooks.get_delivery(delivery.id) == again
