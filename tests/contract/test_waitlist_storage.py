"""Waiting lists and access codes on every backend: blocked seats in the atomic steps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from core import clock
from core.storage import ManagedStorage
from core.storage.errors import (
    CapacityBelowActive,
    ClaimRefused,
    DuplicateKey,
    Missing,
    NoSuchTier,
    SeatsAvailable,
    SoldOut,
    WaitlistClosed,
)
from core.storage.records import Event
from core.storage.requests import ChangeQuery, CodePatch, TierPatch
from tests.support.drift import corrupt_blocked
from tests.support.storage import (
    ACTOR,
    access_code,
    an_event,
    drift_of,
    reserve,
    seats,
    waiter,
)

Advance = Callable[[timedelta], None]


async def sold_out(storage: ManagedStorage, capacity: int = 3) -> tuple[Event, list[str]]:
    """An event whose GA tier is sold out, one seat per booking; the bookings' ids."""
    event = await an_event(storage, capacity=capacity)
    made = [await storage.bookings.reserve(reserve(event, owner=f"b{i}")) for i in range(capacity)]
    return event, [m.booking.id for m in made]


async def statuses(storage: ManagedStorage, event: Event) -> list[tuple[str, str]]:
    return [(e.owner_id, e.status) for e in await storage.waitlist.find(event_id=event.id)]


async def test_a_waiting_list_is_joined_only_when_seats_are_short(
    storage: ManagedStorage,
) -> None:
    event = await an_event(storage, capacity=2)
    with pytest.raises(SeatsAvailable) as free:
        await storage.waitlist.join(waiter(event, "w1", 2))
    assert free.value.available == 2
    await storage.bookings.reserve(reserve(event, owner="b1"))
    joined = await storage.waitlist.join(waiter(event, "w1", 2))  # 1 left, 2 wanted
    assert joined.status == "waiting" and joined.seq == 1
    with pytest.raises(SeatsAvailable):
        await storage.waitlist.join(waiter(event, "w2", 1))
    await storage.bookings.reserve(reserve(event, owner="b2"))
    second = await storage.waitlist.join(waiter(event, "w2", 1))
    assert await storage.waitlist.position(second) == 2
    with pytest.raises(DuplicateKey) as dup:
        await storage.waitlist.join(waiter(event, "w2", 1))
    assert dup.value.field == "waitlist_entry"
    with pytest.raises(NoSuchTier):
        await storage.waitlist.join(waiter(event, "w3", 1, tier="BALCONY"))
    left = await storage.waitlist.leave(second.id, "w2", clock.now())
    assert left.status == "left"
    await storage.waitlist.join(waiter(event, "w2", 1))  # a new live entry after leaving
    with pytest.raises(Missing):
        await storage.waitlist.leave(joined.id, "someone-else", clock.now())
    await storage.events.update(
        event.id,
        expected_version=None,
        fields={},
        tiers=[TierPatch("GA", waitlist_open=False)],
        now=clock.now(),
        actor=ACTOR,
    )
    with pytest.raises(WaitlistClosed):
        await storage.waitlist.join(waiter(event, "w4", 1))
    assert await drift_of(storage, event) == []


async def test_freed_seats_go_to_the_earliest_entries_that_fit(storage: ManagedStorage) -> None:
    event, booked = await sold_out(storage, capacity=3)
    first = await storage.waitlist.join(waiter(event, "w1", 2))
    second = await storage.waitlist.join(waiter(event, "w2", 1))
    third = await storage.waitlist.join(waiter(event, "w3", 1))
    await storage.bookings.cancel(booked[0], None, clock.now(), ACTOR)
    # One seat free: w1 (2) does not fit, w2 does; w3 waits.
    assert await statuses(storage, event) == [
        ("w1", "waiting"),
        ("w2", "offered"),
        ("w3", "waiting"),
    ]
    assert await seats(storage, event) == (0, 0, 2)
    with pytest.raises(SoldOut):
        await storage.bookings.reserve(reserve(event, owner="script"))
    offered = await storage.waitlist.get(second.id)
    assert offered is not None and offered.offer_expires_at is not None
    logged = await storage.changes.find(ChangeQuery(event_id=event.id, type="waitlist.offered"))
    assert [c.subject_id for c in logged] == [second.id]
    await storage.bookings.cancel(booked[1], None, clock.now(), ACTOR)
    assert await statuses(storage, event) == [
        ("w1", "waiting"),
        ("w2", "offered"),
        ("w3", "offered"),
    ]
    # A seat no entry fits is on sale again.
    await storage.bookings.cancel(booked[2], None, clock.now(), ACTOR)
    assert (await statuses(storage, event))[0] == ("w1", "waiting")
    assert await seats(storage, event) == (1, 0, 0)
    made = await storage.bookings.reserve(reserve(event, 1, owner="w2", entry=second.id))
    assert made.booking.quantity == 1
    assert (await storage.waitlist.get(second.id)).status == "booked"  # type: ignore[union-attr]
    assert await seats(storage, event) == (1, 0, 1)
    assert first.seq < second.seq < third.seq
    assert await drift_of(storage, event) == []


async def test_an_offer_is_booked_only_by_its_owner_exactly(storage: ManagedStorage) -> None:
    event, booked = await sold_out(storage, capacity=2)
    entry = await storage.waitlist.join(waiter(event, "w1", 2))
    await storage.bookings.cancel(booked[0], None, clock.now(), ACTOR)
    with pytest.raises(ClaimRefused) as early:
        await storage.bookings.reserve(reserve(event, 2, owner="w1", entry=entry.id))
    assert early.value.reason == "entry_not_offered"
    await storage.bookings.cancel(booked[1], None, clock.now(), ACTOR)
    refusals = [
        (reserve(event, 2, owner="w2", entry=entry.id), "entry_unknown"),
        (reserve(event, 1, owner="w1", entry=entry.id), "offer_quantity"),
        (reserve(event, 2, owner="w1", entry=entry.id, tier="VIP"), "entry_unknown"),
        (reserve(event, 2, owner="w1", entry="nope"), "entry_unknown"),
    ]
    for request, reason in refusals:
        with pytest.raises(ClaimRefused) as refused:
            await storage.bookings.reserve(request)
        assert refused.value.reason == reason
    assert await seats(storage, event) == (0, 0, 0)
    made = await storage.bookings.reserve(reserve(event, 2, owner="w1", entry=entry.id))
    assert made.booking.tier == "GA" and made.booking.quantity == 2
    with pytest.raises(ClaimRefused) as again:
        await storage.bookings.reserve(reserve(event, 2, owner="w1", entry=entry.id))
    assert again.value.reason == "offer_used"
    assert await drift_of(storage, event) == []


async def test_an_expired_or_declined_offer_passes_on(
    storage: ManagedStorage, advance_clock: Advance
) -> None:
    event, booked = await sold_out(storage, capacity=1)
    first = await storage.waitlist.join(waiter(event, "w1", 1, offer_seconds=60))
    second = await storage.waitlist.join(waiter(event, "w2", 1, offer_seconds=60))
    third = await storage.waitlist.join(waiter(event, "w3", 1, offer_seconds=60))
    await storage.bookings.cancel(booked[0], None, clock.now(), ACTOR)
    await storage.waitlist.expire(clock.now())
    assert (await statuses(storage, event))[0] == ("w1", "offered")
    advance_clock(timedelta(seconds=61))
    with pytest.raises(ClaimRefused) as late:
        await storage.bookings.reserve(reserve(event, 1, owner="w1", entry=first.id))
    assert late.value.reason == "offer_expired"
    assert await drift_of(storage, event) == []  # an unswept offer still blocks its seats
    assert await storage.waitlist.expire(clock.now()) >= 1  # other tests' offers too
    assert await statuses(storage, event) == [
        ("w1", "expired"),
        ("w2", "offered"),
        ("w3", "waiting"),
    ]
    await storage.waitlist.leave(second.id, "w2", clock.now())  # declined
    assert await statuses(storage, event) == [("w1", "expired"), ("w2", "left"), ("w3", "offered")]
    made = await storage.bookings.reserve(reserve(event, 1, owner="w3", entry=third.id))
    assert made.booking.status == "confirmed"
    assert await drift_of(storage, event) == []


async def test_raised_capacity_is_offered_and_blocked_seats_keep_capacity_up(
    storage: ManagedStorage,
) -> None:
    event, _ = await sold_out(storage, capacity=2)
    await storage.waitlist.join(waiter(event, "w1", 2))

    async def capacity(n: int) -> None:
        await storage.events.update(
            event.id,
            expected_version=None,
            fields={},
            tiers=[TierPatch("GA", capacity=n)],
            now=clock.now(),
            actor=ACTOR,
        )

    await capacity(4)
    assert await statuses(storage, event) == [("w1", "offered")]
    with pytest.raises(CapacityBelowActive):
        await capacity(3)  # 2 sold, 2 offered
    assert await seats(storage, event) == (0, 0, 2)
    assert await drift_of(storage, event) == []


async def test_a_code_unlocks_hidden_tiers_discounts_and_counts_its_uses(
    storage: ManagedStorage, advance_clock: Advance
) -> None:
    event = await an_event(storage, capacity=10)
    await storage.events.update(
        event.id,
        expected_version=None,
        fields={},
        tiers=[TierPatch("VIP", hidden=True)],
        now=clock.now(),
        actor=ACTOR,
    )
    with pytest.raises(NoSuchTier):
        await storage.bookings.reserve(reserve(event, tier="VIP"))
    code = await storage.codes.create(
        access_code(event, "VIPFANS", max_uses=2, tiers=("VIP",), discount_percent=25),
        clock.now(),
    )
    made = await storage.bookings.reserve(reserve(event, tier="VIP", code="VIPFANS"))
    assert made.booking.unit_price_cents == 9000 * 75 // 100
    refused = {
        "code_unknown": reserve(event, tier="VIP", code="NOPE"),
        "code_other_tier": reserve(event, tier="GA", code="VIPFANS"),
    }
    for reason, request in refused.items():
        with pytest.raises(ClaimRefused) as no:
            await storage.bookings.reserve(request)
        assert no.value.reason == reason
    other = await an_event(storage)
    with pytest.raises(ClaimRefused):
        await storage.bookings.reserve(reserve(other, tier="VIP", code="VIPFANS"))
    second = await storage.bookings.reserve(reserve(event, tier="VIP", code="VIPFANS", owner="u2"))
    with pytest.raises(ClaimRefused) as used_up:
        await storage.bookings.reserve(reserve(event, tier="VIP", code="VIPFANS", owner="u3"))
    assert used_up.value.reason == "code_used_up"
    assert (await storage.codes.get(event.id, code.id)).uses == 2  # type: ignore[union-attr]
    await storage.bookings.cancel(second.booking.id, None, clock.now(), ACTOR)
    assert (await storage.codes.get(event.id, code.id)).uses == 1  # type: ignore[union-attr]
    await storage.codes.update(event.id, code.id, CodePatch(enabled=False), clock.now())
    with pytest.raises(ClaimRefused) as disabled:
        await storage.bookings.reserve(reserve(event, tier="VIP", code="VIPFANS", owner="u3"))
    assert disabled.value.reason == "code_disabled"
    window = await storage.codes.create(
        access_code(event, "LATER", valid_from_s=60, valid_until_s=120), clock.now()
    )
    with pytest.raises(ClaimRefused) as early:
        await storage.bookings.reserve(reserve(event, code="LATER"))
    assert early.value.reason == "code_not_yet_valid"
    advance_clock(timedelta(seconds=121))
    with pytest.raises(ClaimRefused) as late:
        await storage.bookings.reserve(reserve(event, code="LATER"))
    assert late.value.reason == "code_expired"
    assert window.uses == 0
    with pytest.raises(DuplicateKey):
        await storage.codes.create(access_code(event, "LATER"), clock.now())
    assert [c.code for c in await storage.codes.find(event.id)] == ["VIPFANS", "LATER"]
    assert await drift_of(storage, event) == []


async def test_a_reserving_code_holds_its_seats_until_disabled(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=4)
    with pytest.raises(CapacityBelowActive):
        await storage.codes.create(
            access_code(event, "BIG", max_uses=5, reserve_seats=True), clock.now()
        )
    code = await storage.codes.create(
        access_code(event, "PRESALE", max_uses=3, reserve_seats=True), clock.now()
    )
    assert await seats(storage, event) == (1, 0, 0)
    await storage.bookings.reserve(reserve(event, owner="b1"))
    with pytest.raises(SoldOut):
        await storage.bookings.reserve(reserve(event, owner="b2"))
    made = await storage.bookings.reserve(reserve(event, owner="fan1", code="PRESALE"))
    assert await seats(storage, event) == (0, 0, 2)
    entry = await storage.waitlist.join(waiter(event, "w1", 2))
    await storage.bookings.cancel(
        made.booking.id, None, clock.now(), ACTOR
    )  # the seat is held again
    assert await statuses(storage, event) == [("w1", "waiting")]
    with pytest.raises(CapacityBelowActive):
        await storage.codes.update(event.id, code.id, CodePatch(max_uses=4), clock.now())
    await storage.codes.update(event.id, code.id, CodePatch(enabled=False), clock.now())
    assert await statuses(storage, event) == [("w1", "offered")]
    await storage.bookings.reserve(reserve(event, 2, owner="w1", entry=entry.id))
    assert await seats(storage, event) == (1, 0, 3)
    assert await drift_of(storage, event) == []


async def test_recount_reports_and_repairs_blocked_seats(
    storage: ManagedStorage, database_url: str
) -> None:
    event, booked = await sold_out(storage, capacity=2)
    await storage.waitlist.join(waiter(event, "w1", 1))
    await storage.bookings.cancel(booked[0], None, clock.now(), ACTOR)
    assert await drift_of(storage, event) == []
    await corrupt_blocked(database_url, event.id, "GA", 0)
    assert await drift_of(storage, event) == [f"{event.id} tier GA blocked: counter 0, bookings 1"]
    fixed = await storage.bookings.recount(clock.now(), fix=True)
    assert [d.counter_of for d in fixed if d.event_id == event.id] == ["tier GA blocked"]
    assert await drift_of(storage, event) == []
    assert await seats(storage, event) == (0, 0, 1)


async def test_cancelling_an_event_gives_codes_their_uses_back(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=5)
    code = await storage.codes.create(
        access_code(event, "HELD", max_uses=2, reserve_seats=True), clock.now()
    )
    await storage.bookings.reserve(reserve(event, code="HELD"))
    await storage.events.transition(event.id, ("published",), "cancelled", clock.now(), ACTOR)
    assert (await storage.codes.get(event.id, code.id)).uses == 0  # type: ignore[union-attr]
    assert await drift_of(storage, event) == []
