"""Group commit on every backend: bookings of one tier that wait together share one atomic
step, and every way a batch can fail leaves the seats right."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from core.metrics import RESERVE_BATCH_SIZE
from core.storage import ManagedStorage
from core.storage.errors import SoldOut
from core.storage.records import Reservation, new_id, new_ticket_number
from tests.support.storage import an_event, reserve, seats


def batch_sizes() -> tuple[float, float]:
    """(statements, bookings) recorded by the batch-size histogram so far."""
    samples = {s.name: s.value for m in RESERVE_BATCH_SIZE.collect() for s in m.samples}
    return samples["ticketboss_reserve_batch_size_count"], samples[
        "ticketboss_reserve_batch_size_sum"
    ]


async def test_bookings_waiting_together_share_one_statement(storage: ManagedStorage) -> None:
    event = await an_event(storage, capacity=100)
    before = batch_sizes()
    made = await asyncio.gather(
        *(
            storage.bookings.reserve(reserve(event, 1, owner=f"b{i}", key=f"k{i}"))
            for i in range(30)
        )
    )
    after = batch_sizes()
    statements, bookings = after[0] - before[0], after[1] - before[1]
    assert bookings == 30 and statements < 30  # at least one batch held several bookings
    assert len({r.booking.id for r in made}) == 30
    assert len({r.booking.ticket_number for r in made}) == 30
    assert await seats(storage, event) == (70, 0, 30)
    assert [
        d
        for d in await storage.bookings.recount(made[0].booking.created_at, fix=False)
        if d.event_id == event.id
    ] == []


async def test_a_batch_larger_than_the_seats_left_sells_exactly_the_seats(
    storage: ManagedStorage,
) -> None:
    """At every size from 2 to 64: a batch one seat too large falls back to single
    statements, and each request is refused only by its own."""
    sizes = range(2, 65, 9) if storage.kind == "mongodb" else range(2, 65)
    for size in sizes:
        event = await an_event(storage, capacity=size - 1)
        results = await asyncio.gather(
            *(storage.bookings.reserve(reserve(event, 1, owner=f"o{i}")) for i in range(size)),
            return_exceptions=True,
        )
        made = [r for r in results if isinstance(r, Reservation)]
        refused = [r for r in results if isinstance(r, SoldOut)]
        assert (len(made), len(refused)) == (size - 1, 1), (size, results)
        assert await seats(storage, event) == (0, 0, size - 1)


async def test_duplicate_keys_inside_a_batch_and_against_stored_rows(
    storage: ManagedStorage,
) -> None:
    event = await an_event(storage, capacity=100)
    stored = await storage.bookings.reserve(
        reserve(event, 2, owner="fan", key="early", request_hash="h")
    )
    requests = [reserve(event, 1, owner=f"p{i}", key=f"k{i}") for i in range(8)]
    # the same owner and key twice in one batch (two requests: two booking ids)
    twin = dataclasses.replace(requests[3], booking_id=new_id(), ticket_number=new_ticket_number())
    again = reserve(event, 2, owner="fan", key="early", request_hash="h")
    results = await asyncio.gather(*(storage.bookings.reserve(r) for r in [*requests, twin, again]))
    assert results[-1].replayed and results[-1].booking.id == stored.booking.id
    assert results[3].booking.id == results[8].booking.id  # one booking for the twin keys
    assert sum(not r.replayed for r in results) == 8
    assert await seats(storage, event) == (100 - 2 - 8, 0, 10)


async def test_a_caller_that_leaves_before_its_batch_starts_books_nothing(
    storage: ManagedStorage,
) -> None:
    event = await an_event(storage, capacity=10)
    leaving = asyncio.create_task(storage.bookings.reserve(reserve(event, 4, owner="gone")))
    staying = asyncio.create_task(storage.bookings.reserve(reserve(event, 1, owner="here")))
    leaving.cancel()  # before the loop runs the batch that would have taken it
    made = await staying
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert made.booking.owner_id == "here"
    assert await seats(storage, event) == (9, 0, 1)
