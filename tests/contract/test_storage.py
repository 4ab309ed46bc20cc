"""The storage contract: every test here runs unchanged on sqlite, postgresql and mongodb."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import pytest

from core import clock
from core.storage import ManagedStorage
from core.storage.errors import (
    BookingExpired,
    BuyerLimit,
    CapacityBelowActive,
    DuplicateKey,
    HasActiveBookings,
    InvalidTransition,
    Missing,
    NoSuchTier,
    NotOnSale,
    NotPending,
    SoldOut,
    VersionMismatch,
)
from core.storage.records import Event, RefreshToken, Reservation
from core.storage.requests import BookingQuery, EventQuery, ReserveRequest, TierPatch
from tests.support.drift import corrupt_buyer_count, corrupt_counter
from tests.support.storage import ACTOR, a_user, an_event, reserve, seats


async def test_users_unique_email_and_roles(storage: ManagedStorage) -> None:
    user = await storage.users.create(a_user())
    assert await storage.users.get(user.id) == user
    assert (await storage.users.get_by_email(user.email)) == user
    with pytest.raises(DuplicateKey):
        await storage.users.create(a_user(user.email))
    promoted = await storage.users.set_role(user.id, "organizer", clock.now())
    assert promoted.role == "organizer" and promoted.token_version == user.token_version + 1
    logged_out = await storage.users.bump_token_version(user.id, clock.now())
    assert logged_out.token_version == promoted.token_version + 1
    with pytest.raises(Missing):
        await storage.users.set_role("missing", "admin", clock.now())


async def test_refresh_tokens_are_spent_once_and_revoked_by_family(storage: ManagedStorage) -> None:
    family = uuid.uuid4().hex
    first, second = (
        RefreshToken(uuid.uuid4().hex, family, "u", clock.now() + timedelta(days=1))
        for _ in range(2)
    )
    await storage.tokens.add(first)
    await storage.tokens.add(second)
    assert await storage.tokens.spend(first.jti, clock.now()) == "ok"
    assert await storage.tokens.spend(first.jti, clock.now()) == "spent"
    assert await storage.tokens.spend("nope", clock.now()) == "unknown"
    await storage.tokens.revoke_family(family)
    assert (
        await storage.tokens.spend(second.jti, clock.now()) == "revoked"
    )  # ended unused: not a replay


async def test_reserve_confirms_and_counts(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    result = await storage.bookings.reserve(reserve(event, 3))
    assert not result.replayed
    booking = result.booking
    assert (booking.status, booking.quantity, booking.unit_price_cents, booking.total_cents) == (
        "confirmed",
        3,
        1500,
        4500,
    )
    assert await storage.bookings.get(booking.id) == booking
    assert await seats(storage, event) == (7, 0, 3)


async def test_reserve_refuses_what_is_not_there(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=4)
    await storage.bookings.reserve(reserve(event, 3))
    with pytest.raises(SoldOut) as refused:
        await storage.bookings.reserve(reserve(event, 2))
    assert refused.value.available == 1
    with pytest.raises(NoSuchTier):
        await storage.bookings.reserve(reserve(event, 1, tier="NOPE"))
    draft = await an_event(storage, status="draft")
    with pytest.raises(NotOnSale):
        await storage.bookings.reserve(reserve(draft, 1))
    assert await seats(storage, event) == (1, 0, 3)


async def test_idempotency_key_is_a_durable_backstop(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    first = await storage.bookings.reserve(reserve(event, 2, key="k-1", request_hash="h"))
    again = await storage.bookings.reserve(reserve(event, 2, key="k-1", request_hash="h"))
    assert not first.replayed and again.replayed
    assert (
        again.booking is not None
        and first.booking is not None
        and again.booking.id == first.booking.id
    )
    other_owner = await storage.bookings.reserve(reserve(event, 2, key="k-1", owner="u2"))
    assert not other_owner.replayed
    assert await seats(storage, event) == (6, 0, 4)
    assert await storage.bookings.get_by_key("u1", "k-1") == first.booking


async def test_per_user_limit_is_atomic_with_the_seat_check(storage: ManagedStorage) -> None:
    event = await an_event(storage, max_per_user=4)
    await storage.bookings.reserve(reserve(event, 3, max_per_user=4))
    with pytest.raises(BuyerLimit) as refused:
        await storage.bookings.reserve(reserve(event, 2, max_per_user=4))
    assert refused.value.limit == "max_per_user"
    await storage.bookings.reserve(reserve(event, 1, max_per_user=4))
    await storage.bookings.reserve(reserve(event, 2, owner="u2", max_per_user=4))
    assert await seats(storage, event) == (4, 0, 6)


async def test_holds_confirm_cancel_and_expire(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=3)
    hold = (await storage.bookings.reserve(reserve(event, 2, hold_seconds=60))).booking
    assert hold is not None and hold.status == "pending" and hold.expires_at is not None
    assert await seats(storage, event) == (1, 2, 0)
    with pytest.raises(Missing):
        await storage.bookings.confirm(hold.id, "someone-else", clock.now(), ACTOR)
    confirmed = await storage.bookings.confirm(hold.id, "u1", clock.now(), ACTOR)
    assert confirmed is not None and confirmed.status == "confirmed"
    with pytest.raises(NotPending):
        await storage.bookings.confirm(hold.id, "u1", clock.now(), ACTOR)
    cancelled = await storage.bookings.cancel(hold.id, "u1", clock.now(), ACTOR)
    assert cancelled is not None and cancelled.status == "cancelled"
    with pytest.raises(NotPending):
        await storage.bookings.cancel(hold.id, None, clock.now(), ACTOR)
    assert await seats(storage, event) == (3, 0, 0)


async def test_an_expired_hold_never_blocks_a_sale(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=2)
    hold = (await storage.bookings.reserve(reserve(event, 2, hold_seconds=0.2))).booking
    assert hold is not None
    await asyncio.sleep(0.3)
    assert await seats(storage, event) == (2, 0, 0)  # availability already ignores it
    with pytest.raises(BookingExpired):
        await storage.bookings.confirm(hold.id, "u1", clock.now(), ACTOR)
    # the booking path releases the expired hold before it would refuse
    await storage.bookings.reserve(reserve(event, 2, owner="u2"))
    expired = await storage.bookings.get(hold.id)
    assert expired is not None and expired.status == "expired"
    assert await storage.bookings.recount(clock.now(), fix=False) == []


async def test_release_expired_sweeps(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=5)
    for _ in range(3):
        await storage.bookings.reserve(reserve(event, 1, hold_seconds=0.1))
    await asyncio.sleep(0.2)
    assert await storage.bookings.release_expired(clock.now(), event.id) == 3
    assert await storage.bookings.release_expired(clock.now(), event.id) == 0
    refreshed = await storage.events.get(event.id)
    assert refreshed is not None and refreshed.tier("GA") is not None
    assert refreshed.tier("GA").active == 0  # type: ignore[union-attr]


async def test_cancelling_an_event_releases_every_booking(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    held = (await storage.bookings.reserve(reserve(event, 2, hold_seconds=60))).booking
    sold = (await storage.bookings.reserve(reserve(event, 3))).booking
    cancelled = await storage.events.transition(
        event.id, ("draft", "published"), "cancelled", clock.now(), ACTOR
    )
    assert cancelled.status == "cancelled"
    for booking in (held, sold):
        stored = await storage.bookings.get(booking.id)
        assert stored is not None and stored.status == "cancelled"
    with pytest.raises(NotOnSale):
        await storage.bookings.reserve(reserve(event, 1))
    with pytest.raises(InvalidTransition):
        await storage.events.transition(event.id, ("draft",), "published", clock.now(), ACTOR)
    assert await storage.bookings.recount(clock.now(), fix=False) == []


async def test_event_updates_check_version_and_capacity(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    await storage.bookings.reserve(reserve(event, 6))
    updated = await storage.events.update(
        event.id,
        expected_version=event.version,
        fields={"name": "Renamed"},
        tiers=[TierPatch("VIP", price_cents=12000)],
        now=clock.now(),
        actor=ACTOR,
    )
    assert (
        updated is not None and updated.name == "Renamed" and updated.version == event.version + 1
    )
    assert updated.tier("VIP").price_cents == 12000  # type: ignore[union-attr]
    with pytest.raises(VersionMismatch):
        await storage.events.update(
            event.id,
            expected_version=event.version,
            fields={"name": "x"},
            tiers=[],
            now=clock.now(),
            actor=ACTOR,
        )
    with pytest.raises(CapacityBelowActive) as info:
        await storage.events.update(
            event.id,
            expected_version=None,
            fields={},
            tiers=[TierPatch("GA", capacity=5)],
            now=clock.now(),
            actor=ACTOR,
        )
    assert info.value.active == 6
    grown = await storage.events.update(
        event.id,
        expected_version=None,
        fields={},
        tiers=[TierPatch("GA", capacity=6), TierPatch("BALCONY", "Balcony", 500, 20)],
        now=clock.now(),
        actor=ACTOR,
    )
    assert grown is not None and [t.code for t in grown.tiers] == ["GA", "VIP", "BALCONY"]
    with pytest.raises(SoldOut):
        await storage.bookings.reserve(reserve(grown, 1))
    await storage.bookings.reserve(reserve(grown, 1, tier="BALCONY"))
    with pytest.raises(Missing):
        await storage.events.update(
            "missing",
            expected_version=None,
            fields={"name": "x"},
            tiers=[],
            now=clock.now(),
            actor=ACTOR,
        )


async def test_soft_delete_refuses_while_seats_are_held(storage: ManagedStorage) -> None:
    event = await an_event(storage)
    booking = (await storage.bookings.reserve(reserve(event, 1))).booking
    assert booking is not None
    with pytest.raises(HasActiveBookings):
        await storage.events.soft_delete(event.id, clock.now(), ACTOR)
    await storage.bookings.cancel(booking.id, None, clock.now(), ACTOR)
    await storage.events.soft_delete(event.id, clock.now(), ACTOR)
    assert await storage.events.get(event.id) is None
    assert await storage.events.get(event.id, include_deleted=True) is not None


async def test_listing_pages_and_search(storage: ManagedStorage) -> None:
    tag = uuid.uuid4().hex[:8]
    owner_events = []
    for index in range(5):
        owner_events.append(await an_event(storage, status="draft", name=f"Walk {index}"))
    ids = {e.id for e in owner_events}
    seen: list[str] = []
    after = None
    while True:
        page = await storage.events.find(
            EventQuery(statuses=("draft",), owner_id="owner", after_id=after, limit=2)
        )
        seen += [e.id for e in page if e.id in ids]
        if len(page) < 2:
            break
        after = page[-1].id
    assert seen == sorted(ids)
    jazz = await an_event(storage, name=f"Jazz{tag} Night", venue="Blue Hall")
    venue_hit = await an_event(storage, name="Rock Fest", venue=f"Jazz{tag} Club")
    found = await storage.events.find(EventQuery(text=f"jazz{tag}", limit=10))
    assert [e.id for e in found] == [jazz.id, venue_hit.id]  # a name match outranks a venue match
    assert await storage.events.find(EventQuery(text=f"jazz{tag} night", limit=10)) == [jazz]


async def test_recount_finds_and_repairs_drift(storage: ManagedStorage, database_url: str) -> None:
    event = await an_event(storage)
    await storage.bookings.reserve(reserve(event, 4))
    await corrupt_counter(database_url, event.id, "GA", 9)
    drifts = [
        d for d in await storage.bookings.recount(clock.now(), fix=False) if d.event_id == event.id
    ]
    assert [(d.counter_of, d.counter, d.actual) for d in drifts] == [("tier GA", 9, 4)]
    await storage.bookings.recount(clock.now(), fix=True)
    assert [
        d for d in await storage.bookings.recount(clock.now(), fix=False) if d.event_id == event.id
    ] == []
    await storage.bookings.reserve(reserve(event, 6))


async def test_concurrent_reserves_never_oversell(storage: ManagedStorage) -> None:
    parallel = 16 if storage.kind == "mongodb" else 60  # mongoeco: modest parallelism
    event = await an_event(storage, capacity=25)
    results = await asyncio.gather(
        *(storage.bookings.reserve(reserve(event, 2, owner=f"u{i}")) for i in range(parallel)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, Reservation)]
    assert all(isinstance(r, Reservation | SoldOut) for r in results), results
    assert len(created) == 12  # 12 × 2 = 24 ≤ 25: a 13th pair does not fit
    assert await seats(storage, event) == (25 - 2 * len(created), 0, 2 * len(created))
    assert await storage.bookings.recount(clock.now(), fix=False) == []


async def buyer_drift(storage: ManagedStorage, event: Event) -> list[str]:
    return [
        d.describe()
        for d in await storage.bookings.recount(clock.now(), fix=False)
        if d.event_id == event.id
    ]


async def test_every_booking_counts_for_its_buyer(storage: ManagedStorage) -> None:
    """Bookings made while the event has no limit count once a limit is set, and releasing
    them never drives a count negative (issue #10.3)."""
    event = await an_event(storage)
    sold = (await storage.bookings.reserve(reserve(event, 3, owner="fan"))).booking
    held = (await storage.bookings.reserve(reserve(event, 2, owner="fan", hold_seconds=60))).booking
    assert await buyer_drift(storage, event) == []
    with pytest.raises(BuyerLimit):  # 3 + 2 already held: a limit of 6 leaves room for 1
        await storage.bookings.reserve(reserve(event, 2, owner="fan", max_per_user=6))
    await storage.bookings.reserve(reserve(event, 1, owner="fan", max_per_user=6))
    await storage.bookings.confirm(held.id, "fan", clock.now(), ACTOR)
    for booking in (sold, held):
        await storage.bookings.cancel(booking.id, "fan", clock.now(), ACTOR)
    assert await buyer_drift(storage, event) == []
    await storage.bookings.reserve(reserve(event, 5, owner="fan", max_per_user=6))
    with pytest.raises(BuyerLimit):
        await storage.bookings.reserve(reserve(event, 1, owner="fan", max_per_user=6))


async def test_pending_seats_per_buyer_are_capped(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=50)

    def hold(quantity: int) -> ReserveRequest:
        return dataclasses.replace(
            reserve(event, quantity, owner="hoarder", hold_seconds=60), max_pending=4
        )

    first = (await storage.bookings.reserve(hold(3))).booking
    with pytest.raises(BuyerLimit) as refused:
        await storage.bookings.reserve(hold(2))
    assert refused.value.limit == "max_pending"
    with pytest.raises(BuyerLimit):
        await storage.bookings.reserve(hold(5))  # larger than the cap on its own
    await storage.bookings.reserve(hold(1))
    # confirmed seats free the cap
    await storage.bookings.confirm(first.id, "hoarder", clock.now(), ACTOR)
    await storage.bookings.reserve(hold(3))
    await storage.bookings.reserve(reserve(event, 10, owner="hoarder"))  # confirmed: not capped
    assert await seats(storage, event) == (50 - 3 - 1 - 3 - 10, 4, 13)
    assert await buyer_drift(storage, event) == []


async def test_concurrent_holds_of_one_buyer_stay_within_the_cap(storage: ManagedStorage) -> None:
    parallel = 6 if storage.kind == "mongodb" else 20
    event = await an_event(storage, capacity=100)
    requests = [
        dataclasses.replace(reserve(event, 1, owner="rush", hold_seconds=60), max_pending=5)
        for _ in range(parallel)
    ]
    results = await asyncio.gather(
        *(storage.bookings.reserve(r) for r in requests), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, Reservation)]
    assert all(isinstance(r, Reservation | BuyerLimit) for r in results), results
    assert len(made) == min(5, parallel)
    assert await buyer_drift(storage, event) == []


async def test_recount_reports_buyer_drift_without_writing(
    storage: ManagedStorage, database_url: str
) -> None:
    event = await an_event(storage)
    await storage.bookings.reserve(reserve(event, 2, owner="fan"))
    await storage.bookings.reserve(reserve(event, 1, owner="late", hold_seconds=0.05))
    await corrupt_buyer_count(database_url, event.id, "fan", 9)
    await asyncio.sleep(0.1)
    report = await buyer_drift(storage, event)
    assert report == [f"{event.id} buyer fan active: counter 9, bookings 2"]
    late = await storage.bookings.find(BookingQuery(owner_id="late", event_id=event.id))
    assert late[0].status == "pending"  # a read-only recount released nothing
    fixed = [
        d.describe()
        for d in await storage.bookings.recount(clock.now(), fix=True)
        if d.event_id == event.id
    ]
    assert fixed == report
    assert await buyer_drift(storage, event) == []


async def test_cancelling_an_event_during_a_rush_leaves_nothing_active(
    storage: ManagedStorage,
) -> None:
    """Bookings racing an event's cancellation, 20 rounds (3 at modest parallelism on
    mongoeco): every one either lands before the tiers close (and is cancelled with the
    event) or is refused; the counters agree (issue #10.2)."""
    rounds, parallel = (3, 8) if storage.kind == "mongodb" else (20, 40)
    for _ in range(rounds):
        event = await an_event(storage, capacity=1000)

        async def book(i: int, event: Event = event) -> object:
            await asyncio.sleep(0.002 * (i % 10))
            return await storage.bookings.reserve(reserve(event, 1, owner=f"r{i}"))

        async def cancel(event: Event = event) -> object:
            await asyncio.sleep(0.01)
            return await storage.events.transition(
                event.id, ("published",), "cancelled", clock.now(), ACTOR
            )

        results = await asyncio.gather(
            cancel(), *(book(i) for i in range(parallel)), return_exceptions=True
        )
        assert all(isinstance(r, Event | Reservation | NotOnSale) for r in results), results
        counts = await storage.events.availability(event.id, clock.now())
        assert sum(c.pending + c.confirmed for c in counts) == 0
        stored = await storage.events.get(event.id)
        assert stored is not None and all(t.active == 0 and not t.on_sale for t in stored.tiers)
        assert await buyer_drift(storage, event) == []
