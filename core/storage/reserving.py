"""`reserve`, `release_expired` and `recount` as every backend runs them around its own
atomic steps.

The write paths of "take seats, count the buyer, insert the booking", one table (every one of
them runs under tests/contract, whose `database_url` covers the three backends, and
test_batching.py for the batches):

| variant                        | backend    | where                                    | kept by                              |
|--------------------------------|------------|------------------------------------------|--------------------------------------|
| one statement (data-modifying  | PostgreSQL | sql/statements.PG_RESERVE via            | the hot row's lock only inside one   |
| CTE, autocommit, asyncpg)      |            | sql/reserve._pg: unlimited buyer, alone  | round trip; no figure of its own yet |
| short transaction, buyer's     | PostgreSQL | sql/reserve._in_transaction (RESERVE_    | correctness: the buyer's guarded     |
| count upserted first           |            | SEATS after count_buyer_within_limits)   | count must come first (no figure)    |
| BEGIN IMMEDIATE transaction    | SQLite     | sql/reserve._in_transaction (TAKE_SEATS, | SQLite's one writer (no alternative) |
|                                |            | count, insert)                           |                                      |
| batch: one statement (unnest)  | PostgreSQL | sql/statements.PG_RESERVE_BATCH          | group commit: ×2.02 bookings/s at 64 |
|                                |            |                                          | conns, PG CPU/booking ×3 lower       |
| batch: one transaction         | SQLite     | sql/reserve._batch_in_transaction        | group commit: 519 → 1,134 bookings/s |
|                                |            |                                          | at 64 conns (README benchmark)       |
| multi-document transaction     | MongoDB    | mongo/reserve (_in_transaction and       | the only atomic form MongoDB has     |
| (alone and batch)              |            | _batch_in_transaction)                   | across tier, buyer and booking       |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from core.metrics import HOLDS_EXPIRED
from core.storage.batching import ReserveBatcher
from core.storage.errors import BuyerLimit, ItemsShort, SoldOut
from core.storage.records import Drift, Reservation
from core.storage.refusals import check_request_limits
from core.storage.requests import BuyerSeats, ReserveRequest


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


class SweepsAndRecounts(ABC):
    """A booking store's sweep of expired holds and its recount: the same on every backend,
    around the backend's own steps."""

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        released = await self._release_expired(now, event_id, tier)
        HOLDS_EXPIRED.inc(released)
        return released

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        """Without `fix`, a read of one snapshot that writes nothing (an observer must not
        compete with what it watches); with it, expired holds are released first, then the
        drifted counters rebuilt in one transaction."""
        if not fix:
            return await self._read_drifts()
        await self.release_expired(now)
        return await self._repair_drifts()

    @abstractmethod
    async def _release_expired(self, now: datetime, event_id: str | None, tier: str | None) -> int:
        """Release the expired holds (of one event or tier); how many were released."""

    @abstractmethod
    async def _read_drifts(self) -> list[Drift]: ...

    @abstractmethod
    async def _repair_drifts(self) -> list[Drift]:
        """The drifts found, with their counters rebuilt, in one transaction."""


class Reserving(SweepsAndRecounts):
    """`reserve` as every backend runs it around its own atomic steps: `_reserve_alone` (one
    booking) and `_reserve_batch` (several of one tier, or None when they do not fit).

    A request larger than a limit on its own is refused before any write. An expired hold
    never blocks a sale: before a refusal for want of seats (or of the buyer's allowance) is
    final, the tier's expired holds are released and the step is tried once more. Requests
    without a per-buyer limit go through the tier's batcher (group commit); the others alone,
    because their buyer's count is a guard of its own. (The release is the store's own
    `release_expired`, hence the base class.)"""

    batch_size = 1
    """The most requests in one batch; 1 turns batching off."""
    batches_in_flight = 1
    """Batches of one tier running at once in this process."""
    fallback_in_parallel = False
    """Whether the requests of a batch that did not fit run alone concurrently."""
    _batcher: ReserveBatcher | None = None

    async def reserve(self, request: ReserveRequest) -> Reservation:
        release = lambda: self.release_expired(request.now, request.event_id, request.tier)  # noqa: E731
        return await releasing_expired(lambda: self._reserve_once(request), release, request)

    async def _reserve_once(self, request: ReserveRequest) -> Reservation:
        if request.claimed:
            return await self._reserve_claimed(request)
        if request.limited or self.batch_size <= 1:
            return await self._reserve_alone(request)
        if self._batcher is None:
            self._batcher = ReserveBatcher(
                self._reserve_batch,
                self._reserve_alone,
                max_size=self.batch_size,
                in_flight=self.batches_in_flight,
                fallback_in_parallel=self.fallback_in_parallel,
            )
        return await self._batcher.reserve(request)

    async def _reserve_alone(self, request: ReserveRequest) -> Reservation:
        raise NotImplementedError

    async def _reserve_claimed(self, request: ReserveRequest) -> Reservation:
        """A booking with an access code or a waiting-list offer: the use or the offer is
        taken in the same atomic step as the seats (never batched)."""
        raise NotImplementedError

    async def _reserve_batch(
        self, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Reservation] | None:
        raise NotImplementedError
