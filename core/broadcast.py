"""Notices to every process: Redis pub/sub on one channel, fanned out in each process to its
local listeners by topic.

Each process holds one subscription whatever its number of listeners, so an idle listener is
an asyncio waiter and nothing more. A notice says only *that* a topic changed; a listener
reads the current state itself, so a lost notice (a reconnect, an outage) delays an update
but never corrupts one, and a listener wakes at most once per burst of notices.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator

from redis.exceptions import RedisError

from core.cache import AnyPipeline, Cache
from core.logging import get_logger

log = get_logger(__name__)
CHANNEL = "ticketboss:changed"
RECONNECT_SECONDS = 1.0
SOON_SECONDS = 0.1


class Broadcast:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.listeners: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.running = False
        self.pending: set[str] = set()
        self.flushing: asyncio.Task[None] | None = None

    async def publish(self, *topics: str) -> None:
        """Tell every process (this one included) that these topics changed."""
        if not topics:
            return

        def queue(pipe: AnyPipeline) -> None:
            for topic in topics:
                # A raw command: redis-py refuses `publish` in a cluster pipeline.
                pipe.execute_command("PUBLISH", CHANNEL, topic)

        try:
            await self.cache.run(queue)
        except RedisError as exc:
            self.cache.degraded("publish", exc)
            self._wake(topics)  # this process at least

    def soon(self, topic: str) -> None:
        """A notice from the write path, published within SOON_SECONDS together with the
        others of that moment: no Redis round trip per change, and live streams do not wait
        for the change-log relay (whose other consumers, mail and webhooks, fall behind a
        busy sale). The relay still announces every change: the catch-all for the ones made
        elsewhere (expiry, another instance). Only where `run` is running (not serverless)."""
        if not self.running:
            return
        self.pending.add(topic)
        if self.flushing is None:
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(SOON_SECONDS)
        finally:
            topics, self.pending, self.flushing = self.pending, set(), None
        try:
            await self.publish(*sorted(topics))
        except Exception as exc:  # a notice is never worth a failed request
            self.cache.degraded("publish", exc)

    @contextlib.contextmanager
    def listen(self, topic: str) -> Iterator[asyncio.Event]:
        """An event set whenever `topic` changes (clear it before reading the state)."""
        changed = asyncio.Event()
        self.listeners[topic].add(changed)
        try:
            yield changed
        finally:
            self.listeners[topic].discard(changed)
            if not self.listeners[topic]:
                del self.listeners[topic]

    def _wake(self, topics: tuple[str, ...] | list[str]) -> None:
        for topic in topics:
            for changed in self.listeners.get(topic, ()):
                changed.set()

    async def run(self) -> None:
        """Receive notices until cancelled, resubscribing after a lost connection."""
        self.running = True
        while True:
            try:
                async with self.cache.subscriber() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            self._wake([data.decode() if isinstance(data, bytes) else str(data)])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep listening through outages
                self.cache.degraded("subscribe", exc)
            # Listeners may have missed notices while disconnected: let them all look again.
            self._wake(list(self.listeners))
            await asyncio.sleep(RECONNECT_SECONDS)
