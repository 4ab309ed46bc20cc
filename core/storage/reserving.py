"""`reserve` as every backend runs it: a `Reserver` composed of the objects it is given (the
steps that take seats, the batcher, the sweeper), each readable on its own.

The write paths of "take seats, count the buyer, insert the booking", one table (every one of
them runs under tests/contract, whose `database_url` covers the three backends:
test_batching.py for the batches, test_reserve_variants.py for each unbatched one); which one
serves which request is wired in one place per backend (`booking_store` in sql/__init__.py and
mongo/__init__.py):

| variant                        | backend    | step (class)                             | kept by                              |
|--------------------------------|------------|------------------------------------------|--------------------------------------|
| one statement (data-modifying  | PostgreSQL | sql/reserve.OneStatement (PG_RESERVE):   | vs the short transaction, batching   |
| CTE, autocommit, asyncpg)      |            | unlimited buyer, alone (and a batch's    | off: ×1.28 / ×1.73 / ×1.29 bookings/s|
|                                |            | fallback); RESERVE_ONE_STATEMENT=false   | at 1 / 16 / 64 conns, server CPU per |
|                                |            | turns it off                             | booking ×0.65-0.8 (see below)        |
| short transaction, buyer's     | PostgreSQL | sql/reserve.InTransaction (RESERVE_SEATS | correctness: the buyer's guarded     |
| count upserted first           |            | after count_buyer_within_limits)         | count must come first (no figure)    |
| BEGIN IMMEDIATE transaction    | SQLite     | sql/reserve.InTransaction (TAKE_SEATS,   | SQLite's one writer (no alternative) |
|                                |            | count, insert)                           |                                      |
| batch: one statement (unnest)  | PostgreSQL | sql/reserve.BatchStatement               | group commit: ×2.02 bookings/s at 64 |
|                                |            | (PG_RESERVE_BATCH)                       | conns, PG CPU/booking ×3 lower       |
| batch: one transaction         | SQLite     | sql/reserve.BatchInTransaction           | group commit: 519 → 1,134 bookings/s |
|                                |            |                                          | at 64 conns (README benchmark)       |
| multi-document transaction     | MongoDB    | mongo/reserve.InTransaction and          | the only atomic form MongoDB has     |
| (alone and batch)              |            | mongo/reserve.BatchInTransaction         | across tier, buyer and booking       |

The one statement's figure: `bench/run.py --backends postgresql --paths bookings
--concurrency 1,16,64 --duration 3 --rounds 2 --env RESERVE_BATCH_MAX=1 --against-env
RESERVE_ONE_STATEMENT=false` (interleaved A/B, median of 2 rounds, on 2 cores shared with other
load: ratios only; PostgreSQL CPU per booking ×0.63 at 16 and ×0.56 at 64 connections).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from core.metrics import HOLDS_EXPIRED
from core.storage.batching import ReserveBatcher
from core.storage.errors import BuyerLimit, ItemsShort, SoldOut
from core.storage.records import Reservation
from core.storage.refusals import check_request_limits
from core.storage.requests import BuyerSeats, ReserveRequest


class Step(Protocol):
    """One booking as one atomic step of a backend: its Reservation, or a refusal."""

    async def reserve(self, request: ReserveRequest) -> Reservation: ...


class Batch(Protocol):
    """Several bookings of one tier as one atomic step of a backend (group commit)."""

    async def reserve_batch(
        self, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Reservation] | None:
        """The batch's bookings in request order, or None when it does not fit (or a key is
        taken): then nothing was written, and each request runs alone."""


type Release = Callable[[datetime, str | None, str | None], Awaitable[int]]
"""A backend's release of expired holds (all, of one event, of one tier); how many."""


class Sweeper:
    """Releases expired holds: the backend's `release`, counted in HOLDS_EXPIRED."""

    def __init__(self, release: Release) -> None:
        self.release = release

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        released = await self.release(now, event_id, tier)
        HOLDS_EXPIRED.inc(released)
        return released


class Reserver:
    """`reserve`: a request larger than a limit on its own is refused before any write; one
    with an access code or a waiting-list offer goes to the `claimed` step (the use or the
    offer taken in the same atomic step as the seats, never batched); one with a per-buyer limit goes to the `limited` step (its buyer's count is a guard of its
    own); any other to the `batcher` (group commit, whose fallback is `unlimited`) or, without
    one, to `unlimited`. An expired hold never blocks a sale: before a refusal for want of
    seats (or of the buyer's allowance) is final, the tier's expired holds are released by the
    `sweeper` and the step is tried once more."""

    def __init__(
        self,
        *,
        limited: Step,
        unlimited: Step,
        claimed: Step,
        sweeper: Sweeper,
        batcher: ReserveBatcher | None,
    ) -> None:
        self.limited = limited
        self.claimed = claimed
        self.unlimited = unlimited
        self.sweeper = sweeper
        self.batcher = batcher

    async def reserve(self, request: ReserveRequest) -> Reservation:
        release = lambda: self.sweeper.release_expired(request.now, request.event_id, request.tier)  # noqa: E731
        return await releasing_expired(lambda: self._once(request), release, request)

    async def _once(self, request: ReserveRequest) -> Reservation:
        if request.claimed:
            return await self.claimed.reserve(request)
        if request.limited:
            return await self.limited.reserve(request)
        if self.batcher is None:
            return await self.unlimited.reserve(request)
        return await self.batcher.reserve(request)


def seats_by_buyer(requests: Sequence[BuyerSeats]) -> list[tuple[str, tuple[int, int]]]:
    """(owner, (seats, of which pending)) for each buyer of a batch, in owner order (so that
    concurrent batches lock buyer rows in the same order)."""
    seats: dict[str, tuple[int, int]] = {}
    for r in requests:
        active, pending = seats.get(r.owner_id, (0, 0))
        seats[r.owner_id] = (active + r.quantity, pending + r.pending_quantity)
    return sorted(seats.items())


async def releasing_expired[R](
    attempt: Callable[[], Awaitable[R]], release: Callable[[], Awaitable[int]], request: BuyerSeats
) -> R:
    """Refuse a request larger than a limit on its own before any write, then `attempt`; an
    expired hold never blocks a sale: before a refusal for want of seats (or of the buyer's
    allowance) is final, expired holds are released (`release`) and it is attempted again."""
    check_request_limits(request)
    try:
        return await attempt()
    except (SoldOut, ItemsShort, BuyerLimit):
        if not await release():
            raise
    return await attempt()
