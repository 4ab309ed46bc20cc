"""Orders on every backend: several tiers booked together, all or nothing."""

from __future__ import annotations

import asyncio

import pytest

from core import clock
from core.storage import ManagedStorage
from core.storage.errors import (
    BookingExpired,
    BuyerLimit,
    InOrder,
    ItemsShort,
    NoSuchTier,
    NotOnSale,
    SoldOut,
)
from core.storage.records import Actor, Ordered, Reservation
from core.storage.requests import ChangeQuery, OrderQuery
from tests.support.storage import ACTOR, an_event, drift_of, order, reserve, seats

BUYER = Actor("user", "u1")


async def test_an_order_books_every_item_with_its_own_ticket(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=10)
    made = await storage.orders.reserve(order(event, ("GA", 3), ("VIP", 2)))
    o = made.order
    assert not made.replayed and o.status == "confirmed"
    assert [(b.tier, b.quantity, b.unit_price_cents) for b in o.bookings] == [
        ("GA", 3, 1500),
        ("VIP", 2, 9000),
    ]
    assert o.total_cents == 3 * 1500 + 2 * 9000
    assert len({b.ticket_number for b in o.bookings}) == 2
    assert all(b.order_id == o.id for b in o.bookings)
    assert await seats(storage, event) == (7, 0, 3) and await seats(storage, event, "VIP") == (
        0,
        0,
        2,
    )
    assert await storage.orders.get(o.id) == o
    logged = await storage.changes.find(ChangeQuery(event_id=event.id, limit=20))
    assert sorted(c.type for c in logged if c.order_id == o.id) == [
        "booking.created",
        "booking.created",
        "order.created",
    ]
    assert await drift_of(storage, event) == []


async def test_an_order_that_does_not_fit_writes_nothing(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=4)
    with pytest.raises(ItemsShort) as short:
        await storage.orders.reserve(order(event, ("GA", 3), ("VIP", 3)))
    assert short.value.short == [("VIP", 3, 2)]
    with pytest.raises(ItemsShort) as both:
        await storage.orders.reserve(order(event, ("GA", 5), ("VIP", 3)))
    assert both.value.short == [("GA", 5, 4), ("VIP", 3, 2)]
    with pytest.raises(NoSuchTier):
        await storage.orders.reserve(order(event, ("GA", 1), ("BALCONY", 1)))
    draft = await an_event(storage, status="draft")
    with pytest.raises(NotOnSale):
        await storage.orders.reserve(order(draft, ("GA", 1)))
    assert await seats(storage, event) == (4, 0, 0) and await seats(storage, event, "VIP") == (
        2,
        0,
        0,
    )
    assert await storage.orders.find(OrderQuery(event_id=event.id)) == []
    assert await drift_of(storage, event) == []


async def test_an_order_key_replays_the_order(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=10)
    first = await storage.orders.reserve(order(event, ("GA", 1), ("VIP", 1), key="o-1"))
    again = await storage.orders.reserve(order(event, ("GA", 1), ("VIP", 1), key="o-1"))
    assert again.replayed and again.order.id == first.order.id
    assert await seats(storage, event) == (9, 0, 1)


async def test_holds_confirm_expire_and_cancel_as_one(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=10)
    held = (
        await storage.orders.reserve(order(event, ("GA", 2), ("VIP", 1), hold_seconds=60))
    ).order
    assert held.status == "pending" and all(b.status == "pending" for b in held.bookings)
    with pytest.raises(InOrder):
        await storage.bookings.confirm(held.bookings[0].id, "u1", clock.now(), BUYER)
    with pytest.raises(InOrder):
        await storage.bookings.cancel(held.bookings[0].id, None, clock.now(), ACTOR)
    confirmed = await storage.orders.confirm(held.id, "u1", clock.now(), BUYER)
    assert confirmed.status == "confirmed" and all(
        b.status == "confirmed" for b in confirmed.bookings
    )
    cancelled = await storage.orders.cancel(held.id, "u1", clock.now(), BUYER)
    assert cancelled.status == "cancelled" and all(
        b.status == "cancelled" for b in cancelled.bookings
    )
    assert await seats(storage, event) == (10, 0, 0) and await seats(storage, event, "VIP") == (
        2,
        0,
        0,
    )
    lapsing = (
        await storage.orders.reserve(order(event, ("GA", 1), ("VIP", 1), hold_seconds=0.05))
    ).order
    await asyncio.sleep(0.1)
    with pytest.raises(BookingExpired):
        await storage.orders.confirm(lapsing.id, "u1", clock.now(), BUYER)
    assert await storage.bookings.release_expired(clock.now(), event.id) == 2
    expired = await storage.orders.get(lapsing.id)
    assert expired is not None and expired.status == "expired"
    assert all(b.status == "expired" for b in expired.bookings)
    assert await drift_of(storage, event) == []


async def test_the_buyers_limits_count_the_orders_seats_together(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=10)
    with pytest.raises(BuyerLimit):
        await storage.orders.reserve(order(event, ("GA", 3), ("VIP", 2), max_per_user=4))
    await storage.orders.reserve(order(event, ("GA", 2), ("VIP", 2), max_per_user=4))
    with pytest.raises(BuyerLimit):
        await storage.bookings.reserve(reserve(event, 1, max_per_user=4))
    with pytest.raises(BuyerLimit) as capped:
        await storage.orders.reserve(
            order(event, ("GA", 3), owner="h", hold_seconds=60, max_pending=2)
        )
    assert capped.value.limit == "max_pending"
    assert await drift_of(storage, event) == []


async def test_cancelling_the_event_cancels_its_orders(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=10)
    made = (await storage.orders.reserve(order(event, ("GA", 2), ("VIP", 1)))).order
    await storage.events.transition(event.id, ("published",), "cancelled", clock.now(), ACTOR)
    after = await storage.orders.get(made.id)
    assert after is not None and after.status == "cancelled"
    assert all(b.status == "cancelled" for b in after.bookings)


async def test_orders_racing_single_bookings_are_never_partial(storage: ManagedStorage) -> None:
    """Orders of GA+VIP race single bookings of each: every order has both bookings or none,
    no tier is oversold, counters agree, and no deadlock reaches a caller."""
    rounds = 10 if storage.kind == "mongodb" else 40
    event = await an_event(storage, capacity=30)  # GA 30, VIP 2 (the short one)

    async def an_order(i: int) -> object:
        return await storage.orders.reserve(order(event, ("GA", 2), ("VIP", 1), owner=f"o{i}"))

    async def a_booking(i: int) -> object:
        tier = "VIP" if i % 2 else "GA"
        return await storage.bookings.reserve(reserve(event, 1, owner=f"b{i}", tier=tier))

    results = await asyncio.gather(
        *(an_order(i) for i in range(rounds // 2)),
        *(a_booking(i) for i in range(rounds // 2)),
        return_exceptions=True,
    )
    unexpected = [
        r for r in results if not isinstance(r, Ordered | Reservation | ItemsShort | SoldOut)
    ]
    assert unexpected == []
    for r in results:
        if isinstance(r, Ordered):
            assert sorted(b.tier for b in r.order.bookings) == ["GA", "VIP"]
    ga, vip = await seats(storage, event), await seats(storage, event, "VIP")
    assert ga[0] >= 0 and vip[0] >= 0 and vip[2] <= 2
    assert await drift_of(storage, event) == []
