"""Group commit: the reserves of one tier that wait at the same moment go to the database
as one atomic step.

A hot tier is one row (or document) that every booking of it must change; the database
serializes those changes, one lock or one conflict at a time. Sending the waiting bookings of
a tier together changes the row once for all of them: the database's own group commit, or a
ledger that batches transfers, gets its throughput the same way.

Safety does not depend on batching. A batch is one statement or transaction guarded exactly
like a single booking (`active + Σq <= capacity`); when it does not fit, or any of its rows
breaks a unique key, it writes nothing and every request in it runs alone through the single
path, so a request is only ever refused by its own statement, and a duplicate key takes the
replay path as before.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from core.logging import get_logger
from core.metrics import RESERVE_BATCH_SIZE
from core.storage.records import Reservation
from core.storage.requests import ReserveRequest

log = get_logger(__name__)
type Key = tuple[str, str]
"""(event id, tier code)."""
type BatchStep = Callable[[Key, Sequence[ReserveRequest]], Awaitable[list[Reservation] | None]]
type SingleStep = Callable[[ReserveRequest], Awaitable[Reservation]]


@dataclass(slots=True)
class _Lane:
    """The requests of one tier waiting for a batch, and how many batches are running."""

    waiting: deque[tuple[ReserveRequest, asyncio.Future[Reservation]]] = field(
        default_factory=deque
    )
    running: int = 0
    scheduled: bool = False


class ReserveBatcher:
    """Collects reserves per tier and runs them as batches.

    A batch starts on the next event-loop turn after a request arrives (`call_soon`: no
    request waits for a timer), with at most `max_size` requests, and at most `in_flight`
    batches of a tier run at once in this process; requests that arrive meanwhile form the
    next batch, so batches grow with the load by themselves.
    """

    def __init__(
        self,
        batch: BatchStep,
        single: SingleStep,
        *,
        max_size: int,
        in_flight: int,
        fallback_in_parallel: bool,
    ) -> None:
        self.batch = batch
        self.single = single
        self.max_size = max_size
        self.in_flight = in_flight
        self.fallback_in_parallel = fallback_in_parallel
        self.lanes: dict[Key, _Lane] = defaultdict(_Lane)
        self.tasks: set[asyncio.Task[None]] = set()

    async def reserve(self, request: ReserveRequest) -> Reservation:
        key = (request.event_id, request.tier)
        lane = self.lanes[key]
        future: asyncio.Future[Reservation] = asyncio.get_running_loop().create_future()
        lane.waiting.append((request, future))
        self._schedule(key, lane)
        return await future

    def _schedule(self, key: Key, lane: _Lane) -> None:
        if lane.waiting and not lane.scheduled and lane.running < self.in_flight:
            lane.scheduled = True
            asyncio.get_running_loop().call_soon(self._start, key, lane)

    def _start(self, key: Key, lane: _Lane) -> None:
        lane.scheduled = False
        taken: list[tuple[ReserveRequest, asyncio.Future[Reservation]]] = []
        while lane.waiting and len(taken) < self.max_size:
            request, future = lane.waiting.popleft()
            if not future.done():  # a caller that went away before its batch left is dropped
                taken.append((request, future))
        if not taken:
            return
        lane.running += 1
        task = asyncio.get_running_loop().create_task(self._run(key, taken))
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._finished(t, key, lane))

    def _finished(self, task: asyncio.Task[None], key: Key, lane: _Lane) -> None:
        self.tasks.discard(task)
        lane.running -= 1
        self._schedule(key, lane)

    async def _run(
        self, key: Key, taken: list[tuple[ReserveRequest, asyncio.Future[Reservation]]]
    ) -> None:
        requests = [request for request, _ in taken]
        made: list[Reservation] | None = None
        if len(requests) > 1:
            try:
                made = await self.batch(key, requests)
            except Exception:
                made = None
        if made is not None:
            RESERVE_BATCH_SIZE.observe(len(requests))
            for (_, future), reservation in zip(taken, made, strict=True):
                if not future.done():
                    future.set_result(reservation)
            return
        for _ in taken:
            RESERVE_BATCH_SIZE.observe(1)  # each alone, in a statement of its own
        if self.fallback_in_parallel:
            await asyncio.gather(*(self._alone(request, future) for request, future in taken))
        else:
            for request, future in taken:
                await self._alone(request, future)

    async def _alone(self, request: ReserveRequest, future: asyncio.Future[Reservation]) -> None:
        try:
            result = await self.single(request)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
