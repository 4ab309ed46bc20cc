"""The relay of the change log (transactional outbox) to its consumers.

Every state change is recorded in the same atomic step as the change itself
(`core.storage.records.Change`); this relay reads the records not yet dispatched, oldest
first, hands each batch to every consumer (webhooks fan-out, live availability), and only
then marks them dispatched. A crash in between hands the same records over again: consumers
are idempotent (a delivery is unique per webhook and change), so nothing is lost and nothing
is applied twice.

One relay runs at a time across workers and instances: each holds a short lease in storage
and only the holder reads. Changes of one subject are recorded in order (their `seq`), and a
single reader keeps that order.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from core import clock
from core.logging import get_logger
from core.storage.port import Storage
from core.storage.records import Change

log = get_logger(__name__)
RELEASE_SECONDS = 2.0
LEASE = "outbox-relay"

type Consumer = Callable[[Sequence[Change]], Awaitable[None]]


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before a consumer's next attempt after `attempts` failed ones (a webhook
    delivery, a mail): doubling from `base`, at most `cap`, with jitter (between half and all
    of it) so retries do not stampede."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not a secret


class Relay:
    def __init__(
        self,
        storage: Storage,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.25,
        lease_seconds: float = 10.0,
    ) -> None:
        self.storage = storage
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self.consumers: list[Consumer] = []
        self.wake = asyncio.Event()

    def subscribe(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)

    def nudge(self) -> None:
        """Something was recorded in this process: run now rather than at the next poll."""
        self.wake.set()

    async def run_once(self) -> int:
        """Relay one batch if this process holds the lease; how many changes it relayed."""
        now = clock.now()
        if not await self.storage.changes.hold_lease(LEASE, self.holder, now + self.lease, now):
            return 0
        changes = await self.storage.changes.undispatched(self.batch_size)
        if not changes:
            return 0
        for consumer in self.consumers:
            await consumer(changes)
        await self.storage.changes.mark_dispatched([c.id for c in changes], clock.now())
        return len(changes)

    async def release(self) -> None:
        """Give the lease up at shutdown, so another process relays at once rather than when
        the lease runs out (a rolling restart, the next app on the same database)."""
        now = clock.now()
        try:
            # Bounded: a write lock still held by a connection whose task was cancelled must
            # not hold the shutdown up (seen on SQLite).
            async with asyncio.timeout(RELEASE_SECONDS):
                await self.storage.changes.hold_lease(LEASE, self.holder, now, now)
        except Exception as exc:  # shutting down: the lease simply runs out instead
            log.warning("outbox_release_failed", error=type(exc).__name__)

    async def run_forever(self) -> None:
        while True:
            try:
                relayed = await self.run_once()
            except Exception as exc:  # the loop must outlive a failing consumer or database
                log.warning("outbox_relay_failed", error=type(exc).__name__)
                relayed = 0
            if relayed >= self.batch_size:
                continue  # more are waiting
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass
