"""Helpers for tests that drive the storage port directly (the contract suite)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from core import clock
from core.storage import ManagedStorage
from core.storage.records import AccessCode, Actor, Event, Tier, User, WaitlistEntry, new_id
from core.storage.requests import OrderItem, OrderRequest, ReserveRequest

ACTOR = Actor("organizer", "owner")


def a_user(email: str | None = None) -> User:
    now = clock.now()
    return User(new_id(), email or f"{uuid.uuid4().hex}@example.com", "U", "user", "hash", now, now)


async def an_event(
    storage: ManagedStorage,
    *,
    capacity: int = 10,
    status: str = "published",
    max_per_user: int | None = None,
    name: str = "Show",
    venue: str = "Hall",
) -> Event:
    now = clock.now()
    event = Event(
        id=new_id(),
        owner_id="owner",
        name=name,
        venue=venue,
        starts_at=now + timedelta(days=3),
        status="draft",
        tiers=(Tier("GA", "General", 1500, capacity), Tier("VIP", "VIP", 9000, 2)),
        created_at=now,
        updated_at=now,
        max_per_user=max_per_user,
    )
    await storage.events.create(event, ACTOR)
    if status == "published":
        await storage.events.transition(event.id, ("draft",), "published", now, ACTOR)
    found = await storage.events.get(event.id)
    assert found is not None
    return found


def reserve(
    event: Event,
    quantity: int = 1,
    *,
    owner: str = "u1",
    tier: str = "GA",
    hold_seconds: float | None = None,
    key: str | None = None,
    max_per_user: int | None = None,
    request_hash: str | None = None,
    entry: str | None = None,
    code: str | None = None,
) -> ReserveRequest:
    now = clock.now()
    return ReserveRequest(
        waitlist_entry_id=entry,
        access_code=code,
        event_id=event.id,
        tier=tier,
        quantity=quantity,
        owner_id=owner,
        now=now,
        hold_until=now + timedelta(seconds=hold_seconds) if hold_seconds is not None else None,
        idempotency_key=key,
        max_per_user=max_per_user,
        request_hash=request_hash,
    )


async def seats(storage: ManagedStorage, event: Event, tier: str = "GA") -> tuple[int, int, int]:
    counts = {c.code: c for c in await storage.events.availability(event.id, clock.now())}
    c = counts[tier]
    return c.available, c.pending, c.confirmed


def order(
    event: Event,
    *items: tuple[str, int],
    owner: str = "u1",
    hold_seconds: float | None = None,
    key: str | None = None,
    max_per_user: int | None = None,
    max_pending: int | None = None,
) -> OrderRequest:
    now = clock.now()
    return OrderRequest(
        event_id=event.id,
        items=tuple(OrderItem(tier, quantity) for tier, quantity in items),
        owner_id=owner,
        now=now,
        hold_until=now + timedelta(seconds=hold_seconds) if hold_seconds is not None else None,
        idempotency_key=key,
        max_per_user=max_per_user,
        max_pending=max_pending,
    )


async def drift_of(storage: ManagedStorage, event: Event) -> list[str]:
    """The reconcile report for one event (read-only)."""
    return [
        d.describe()
        for d in await storage.bookings.recount(clock.now(), fix=False)
        if d.event_id == event.id
    ]


def waiter(
    event: Event, owner: str, quantity: int = 1, *, tier: str = "GA", offer_seconds: int = 60
) -> WaitlistEntry:
    """A waiting-list entry to join (its place in the list is given by the join)."""
    now = clock.now()
    return WaitlistEntry(
        new_id(), event.id, tier, owner, quantity, "waiting", 0, offer_seconds, now, now
    )


def access_code(
    event: Event,
    code: str = "FANS",
    *,
    max_uses: int = 5,
    tiers: tuple[str, ...] = ("GA",),
    reserve_seats: bool = False,
    discount_percent: int = 0,
    valid_from_s: float | None = None,
    valid_until_s: float | None = None,
) -> AccessCode:
    """A code of `event`; validity bounds in seconds from now."""
    now = clock.now()

    def at(seconds: float | None) -> datetime | None:
        return None if seconds is None else now + timedelta(seconds=seconds)

    return AccessCode(
        new_id(),
        event.id,
        code,
        max_uses,
        tiers,
        now,
        now,
        valid_from=at(valid_from_s),
        valid_until=at(valid_until_s),
        reserve_seats=reserve_seats,
        holding=reserve_seats,
        discount_percent=discount_percent,
    )
