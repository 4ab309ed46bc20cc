"""The cache: Redis from REDIS_URL, or an in-process fakeredis when none is configured.

Nothing correctness-critical lives only here; callers treat Redis errors as a miss.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from core.logging import get_logger

log = get_logger(__name__)
WARN_EVERY_SECONDS = 10.0
_batched: ContextVar[list[tuple[str, int]] | None] = ContextVar("cache_batched", default=None)


class Cache:
    def __init__(self, url: str | None) -> None:
        self.kind = "redis" if url else "fakeredis"
        self.client: redis.Redis
        if url:
            self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        else:
            import fakeredis  # only the embedded setup pays for importing it

            self.client = fakeredis.FakeAsyncRedis()
        self._last_warning = 0.0

    def degraded(self, what: str, exc: Exception) -> None:
        """Record that Redis failed; log at most once per interval so outages stay readable."""
        now = time.monotonic()
        if now - self._last_warning > WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("redis_unavailable", operation=what, error=type(exc).__name__)

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except RedisError as exc:
            self.degraded("ping", exc)
            raise

    async def get_many_json(self, *keys: str) -> list[Any | None]:
        """Several JSON values in one round trip (None for a miss, or for every key on error)."""
        try:
            raws = await self.client.mget(keys)
        except RedisError as exc:
            self.degraded("mget", exc)
            return [None] * len(keys)
        return [None if raw is None else json.loads(raw) for raw in raws]

    async def incr(self, key: str, ttl_seconds: int) -> None:
        """Bump a counter; inside `batch()` it is written with the batch's other commands."""
        pending = _batched.get()
        if pending is not None:
            pending.append((key, ttl_seconds))
            return
        await self.write([], increments=[(key, ttl_seconds)])

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[list[tuple[str, int]]]:
        """Collect the increments made in this block (this task) instead of writing them;
        the caller must pass the yielded list to `write` before it answers."""
        pending: list[tuple[str, int]] = []
        token = _batched.set(pending)
        try:
            yield pending
        finally:
            _batched.reset(token)

    async def write(
        self,
        commands: list[tuple[str, ...]],
        increments: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Send commands (as raw argument tuples) and counter bumps in one round trip."""
        if not commands and not increments:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for args in commands:
                    pipe.execute_command(*args)
                for key, ttl in increments:
                    pipe.incr(key)
                    pipe.expire(key, ttl)
                await pipe.execute()
        except RedisError as exc:
            self.degraded("write", exc)

    async def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        try:
            await self.client.set(key, json.dumps(value, separators=(",", ":")), ex=ttl_seconds)
        except RedisError as exc:
            self.degraded("set", exc)

    async def close(self) -> None:
        await self.client.aclose()
