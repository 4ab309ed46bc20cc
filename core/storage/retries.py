"""Retries of transient conflicts, the same on every backend: jittered backoff, bounded by a
budget of time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from core.metrics import CONFLICTS_RETRIED
from core.storage.errors import StorageBusy

MAX_ATTEMPTS = 10


CONTENTION_BUDGET_SECONDS = 10.0


BACKOFF_BASE_SECONDS = 0.005


BACKOFF_CAP_SECONDS = 0.25


def backoff(attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempt)]."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311


async def pause(attempt: int) -> None:
    await asyncio.sleep(backoff(attempt))


async def retrying[R](
    work: Callable[[], Awaitable[R]], transient: Callable[[Exception], bool], backend: str
) -> R:
    """Run `work`, again after a transient conflict, for at least MAX_ATTEMPTS attempts and
    until CONTENTION_BUDGET_SECONDS have passed.

    A budget of time rather than of attempts: when several processes take turns on one hot
    row, each conflict is lost with odds near one half, so a count of attempts alone is
    exhausted by plain bad luck on a busy machine, while a few seconds of losing means the
    database really is overloaded.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONTENTION_BUDGET_SECONDS
    attempt = 0
    while True:
        try:
            return await work()
        except Exception as exc:
            if not transient(exc):
                raise
        CONFLICTS_RETRIED.labels(backend).inc()
        attempt += 1
        if attempt >= MAX_ATTEMPTS and loop.time() >= deadline:
            raise StorageBusy("too much contention; try again")
        await asyncio.sleep(backoff(attempt))
