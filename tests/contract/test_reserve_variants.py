"""The reserve variants that the default wiring reaches only as a batch's fallback, each
alone on every backend: group commit off (`batch_size` 1), and on PostgreSQL the short
transaction instead of the one statement (`one_statement` False). The default wiring runs
under the rest of tests/contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.storage import ManagedStorage, build_storage
from core.storage.errors import SoldOut
from core.storage.records import Reservation
from core.storage.requests import ChangeQuery
from tests.support.storage import an_event, drift_of, reserve, seats


@pytest.fixture(params=[True, False], ids=["one-statement", "transaction"])
async def unbatched(
    database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[ManagedStorage]:
    if not request.param and not database_url.startswith("postgresql"):
        pytest.skip("one statement or a transaction: a choice on PostgreSQL only")
    store = build_storage(database_url, batch_size=1, one_statement=request.param)
    await store.migrate()
    yield store
    await store.close()


async def test_an_unbatched_rush_sells_exactly_the_seats(unbatched: ManagedStorage) -> None:
    storage = unbatched
    event = await an_event(storage, capacity=3)
    results = await asyncio.gather(
        *(
            storage.bookings.reserve(reserve(event, 1, owner=f"{event.id}-{i % 2}", key=f"k{i}"))
            for i in range(5)
        ),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, Reservation)]
    assert len(made) == 3
    assert all(isinstance(r, SoldOut) for r in results if not isinstance(r, Reservation))
    assert await seats(storage, event) == (0, 0, 3)
    assert await drift_of(storage, event) == []  # every buyer counted exactly once
    for r in made:
        (created,) = await storage.changes.find(
            ChangeQuery(subject_id=r.booking.id, type="booking.created")
        )
        assert created.data["quantity"] == 1


async def test_an_unbatched_hold_counts_as_pending_and_replays(unbatched: ManagedStorage) -> None:
    storage = unbatched
    event = await an_event(storage, capacity=5)
    held = await storage.bookings.reserve(
        reserve(event, 2, owner=event.id, hold_seconds=60, key="h")
    )
    assert held.booking.status == "pending" and not held.replayed
    again = await storage.bookings.reserve(
        reserve(event, 2, owner=event.id, hold_seconds=60, key="h")
    )
    assert again.replayed and again.booking.id == held.booking.id
    assert await seats(storage, event) == (3, 2, 0)
    assert await drift_of(storage, event) == []
