"""One Idempotency-Key space per caller in storage (issue 30), on every backend and every write
variant of core/storage/reserving.py: a key that made a booking cannot make an order, nor the
other way round, and the refused write changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from core.storage import ManagedStorage
from core.storage.errors import KeyClaimed
from core.storage.records import Reservation, new_id
from tests.support.storage import an_event, order, reserve, seats

# A per-buyer limit sends a booking through the transaction with the guarded count; without
# one it goes through the batcher (PostgreSQL: one statement, alone or batched).
VARIANTS = {"unlimited": None, "limited": 10}


@pytest.mark.parametrize("limit", VARIANTS.values(), ids=VARIANTS.keys())
async def test_a_bookings_key_cannot_make_an_order(
    storage: ManagedStorage, limit: int | None
) -> None:
    event, me = await an_event(storage, capacity=10), new_id()
    booked = await storage.bookings.reserve(
        reserve(event, 1, owner=me, key="k", max_per_user=limit)
    )
    with pytest.raises(KeyClaimed) as refused:
        await storage.orders.reserve(order(event, ("GA", 2), owner=me, key="k", max_per_user=limit))
    assert refused.value.kind == "booking"
    assert await seats(storage, event) == (9, 0, 1)
    assert await storage.orders.key_kind(me, "k") == "booking"
    again = await storage.bookings.reserve(reserve(event, 1, owner=me, key="k", max_per_user=limit))
    assert again.replayed and again.booking.id == booked.booking.id


@pytest.mark.parametrize("limit", VARIANTS.values(), ids=VARIANTS.keys())
async def test_an_orders_key_cannot_make_a_booking(
    storage: ManagedStorage, limit: int | None
) -> None:
    event, me = await an_event(storage, capacity=10), new_id()
    placed = await storage.orders.reserve(
        order(event, ("GA", 2), owner=me, key="k", max_per_user=limit)
    )
    with pytest.raises(KeyClaimed) as refused:
        await storage.bookings.reserve(reserve(event, 1, owner=me, key="k", max_per_user=limit))
    assert refused.value.kind == "order"
    assert await seats(storage, event) == (8, 0, 2)
    assert await storage.bookings.key_kind(me, "k") == "order"
    again = await storage.orders.reserve(
        order(event, ("GA", 2), owner=me, key="k", max_per_user=limit)
    )
    assert again.replayed and again.order.id == placed.order.id


async def test_keys_are_per_caller_and_only_sent_keys_are_claimed(
    storage: ManagedStorage,
) -> None:
    event, (a, b, c) = await an_event(storage, capacity=10), (new_id(), new_id(), new_id())
    await storage.bookings.reserve(reserve(event, 1, owner=a, key="k"))
    await storage.orders.reserve(order(event, ("GA", 1), owner=b, key="k"))
    await storage.bookings.reserve(reserve(event, 1, owner=c))
    assert await storage.bookings.key_kind(a, "k") == "booking"
    assert await storage.bookings.key_kind(b, "k") == "order"
    assert await storage.bookings.key_kind(c, "k") is None
    assert await seats(storage, event) == (7, 0, 3)


async def test_a_batch_refuses_only_the_request_whose_key_made_an_order(
    storage: ManagedStorage,
) -> None:
    event, run = await an_event(storage, capacity=100), new_id()
    await storage.orders.reserve(order(event, ("GA", 1), owner=f"{run}-3", key="k3"))
    requests = [reserve(event, 1, owner=f"{run}-{i}", key=f"k{i}") for i in range(8)]
    results = await asyncio.gather(
        *(storage.bookings.reserve(r) for r in requests), return_exceptions=True
    )
    assert isinstance(results[3], KeyClaimed)
    assert all(isinstance(r, Reservation) for i, r in enumerate(results) if i != 3)
    assert await seats(storage, event) == (100 - 1 - 7, 0, 8)
    kinds = [await storage.bookings.key_kind(f"{run}-{i}", f"k{i}") for i in range(8)]
    assert kinds == ["booking"] * 3 + ["order"] + ["booking"] * 4
