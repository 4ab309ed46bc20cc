"""The cache: Redis from REDIS_URL, or an in-process fakeredis when none is configured.

Nothing correctness-critical lives only here; callers treat Redis errors as a miss.

`redis+cluster://host:port` (any node) is a Redis Cluster: the client discovers the other
nodes and sends each command to the node that holds its key. A command or script naming
several keys must name keys of one slot, so such keys share a hash tag (`avail:{<id>}` and
`avail-gen:{<id>}`); a pipeline of single-key commands may cross slots, the client splits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from core.logging import get_logger

log = get_logger(__name__)
WARN_EVERY_SECONDS = 10.0
TIMEOUT_SECONDS = 1.0
"""How long a Redis command may take when REDIS_TIMEOUT_SECONDS is unset."""

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")

type Client = redis.Redis | RedisCluster
type AnyPipeline = Pipeline | ClusterPipeline
type PipelineOp = Callable[[AnyPipeline], object]
"""Queues one or more commands on a pipeline, e.g. `lambda p: p.set(key, value)`."""
type Queued = tuple[PipelineOp, asyncio.Future[list[Any]]]


def is_cluster(url: str | None) -> bool:
    return url is not None and url.startswith(CLUSTER_SCHEMES)


def connect(url: str, **options: Any) -> Client:
    """A client for a REDIS_URL: one server's, or (`redis+cluster://`) a whole cluster's."""
    if is_cluster(url):
        return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    return redis.Redis.from_url(url, **options)


class AutoPipeline:
    """Commands issued during one event-loop turn travel to Redis in one pipeline.

    Under load many requests reach Redis in the same turn; sending their commands together
    costs one write, one read and one pass through redis-py instead of one per command.
    Each caller still gets only its own replies (or its own command's error).
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.queued: list[Queued] = []
        self.sending: set[asyncio.Task[None]] = set()

    def submit(self, op: PipelineOp) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        if not self.queued:
            loop.call_soon(self._flush)  # runs after every callback already due in this turn
        future: asyncio.Future[list[Any]] = loop.create_future()
        self.queued.append((op, future))
        return future

    def _flush(self) -> None:
        batch, self.queued = self.queued, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _send(self, batch: list[Queued]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                callers = _queue(pipe, batch)
                replies = await pipe.execute(raise_on_error=False) if callers else []
        except BaseException as exc:
            error = _as_redis_error(exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for future, size in callers:
            own, start = replies[start : start + size], start + size
            if future.done():
                continue  # its caller was cancelled
            failed = next((r for r in own if isinstance(r, Exception)), None)
            if failed is not None:
                future.set_exception(failed)
            else:
                future.set_result(own)

    async def drain(self) -> None:
        while self.queued or self.sending:
            await asyncio.gather(*self.sending, asyncio.sleep(0), return_exceptions=True)


def _as_redis_error(exc: BaseException) -> Exception:
    """What the callers of a failed send get: a Redis error to fail open on. Cancelled
    (shutdown) callers must not hang; a cluster client fails with errors of its own
    (an unreachable cluster) that are not RedisError."""
    if isinstance(exc, RedisClusterException):
        error = RedisError(str(exc))
        error.__cause__ = exc
        return error
    return exc if isinstance(exc, Exception) else RedisError("the pipeline was cancelled")


def _queue(pipe: AnyPipeline, batch: list[Queued]) -> list[tuple[asyncio.Future[list[Any]], int]]:
    """Queue every op's commands; the callers whose commands went in, with how many each."""
    callers = []
    stack = _commands(pipe)
    for op, future in batch:
        queued = len(stack)
        try:
            op(pipe)
        except Exception as exc:  # a bad op fails its own caller only
            del stack[queued:]
            if not future.done():
                future.set_exception(exc)
            continue
        callers.append((future, len(stack) - queued))
    return callers


def _commands(pipe: AnyPipeline) -> list[Any]:
    """The pipeline's queued commands, as the list a failed op's commands are cut from. A
    cluster pipeline keeps them in its execution strategy (redis-py 8.1, pinned in uv.lock;
    tests/test_cache.py runs the failing-op case against a real cluster)."""
    if isinstance(pipe, ClusterPipeline):
        queue: list[Any] = pipe._execution_strategy._command_queue  # type: ignore[attr-defined]
        return queue
    return pipe.command_stack


class Memo[V]:
    """A small per-process memo with a time-to-live, for values that may be a moment old.

    It lives in the app context, so two apps in one process (tests on several backends) never
    share entries."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.entries: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> V | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, value: V) -> None:
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = (time.monotonic() + self.ttl, value)

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)


class Cache:
    def __init__(self, url: str | None, timeout_seconds: float | None = None) -> None:
        self.kind = "redis-cluster" if is_cluster(url) else "redis" if url else "fakeredis"
        self.client: Client
        self.timeout = timeout_seconds or TIMEOUT_SECONDS
        if url:
            self.client = connect(
                url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        else:
            import fakeredis  # only the embedded setup pays for importing it

            self.client = fakeredis.FakeAsyncRedis()
        self.pipeline = AutoPipeline(self.client)
        self.url = url
        self._last_warning = 0.0

    @property
    def cluster(self) -> bool:
        return isinstance(self.client, RedisCluster)

    @contextlib.asynccontextmanager
    async def subscriber(self) -> AsyncIterator[PubSub]:
        """A pub/sub connection of its own: a subscriber waits for messages indefinitely, so
        it must not share the 1 s read timeout of the request path's connections. In a
        cluster it is one node's connection (the one serving the first channel's slot): every
        node forwards PUBLISH to the others, so any node hears every notice."""
        if self.url is None:
            async with self.client.pubsub() as pubsub:
                yield pubsub
            return
        client = connect(
            self.url, socket_connect_timeout=1.0, socket_keepalive=True, health_check_interval=30
        )
        try:
            if isinstance(client, RedisCluster):
                await client.initialize()  # its pub/sub picks a node from the slot map
            async with client.pubsub() as pubsub:
                yield pubsub
        finally:
            await client.aclose()

    async def run(self, op: PipelineOp) -> list[Any]:
        """Send `op`'s commands with whatever else this turn sends; their replies, in order.
        Raises RedisError like a direct call would."""
        return await self.pipeline.submit(op)

    def degraded(self, what: str, exc: Exception) -> None:
        """Record that Redis failed; log at most once per interval so outages stay readable."""
        now = time.monotonic()
        if now - self._last_warning > WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("redis_unavailable", operation=what, error=type(exc).__name__)

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except RedisClusterException as exc:
            self.degraded("ping", exc)
            raise _as_redis_error(exc) from exc
        except RedisError as exc:
            self.degraded("ping", exc)
            raise

    async def get_many_json(self, *keys: str) -> list[Any | None]:
        """Several JSON values in one round trip (None for a miss, or for every key on error).
        In a cluster the keys must share a slot (a hash tag)."""
        if self.cluster and len({key_slot(key.encode()) for key in keys}) > 1:
            raise ValueError(f"keys of several cluster slots in one MGET: {keys}")
        try:
            # MGET as a raw command: redis-py refuses `mget` in a cluster pipeline even when
            # its keys share a slot.
            (raws,) = await self.run(lambda pipe: pipe.execute_command("MGET", *keys))
        except RedisError as exc:
            self.degraded("mget", exc)
            return [None] * len(keys)
        return [None if raw is None else json.loads(raw) for raw in raws]

    async def incr(self, key: str, ttl_seconds: int) -> None:
        """Bump a counter (and renew its expiry) in one round trip."""
        await self.write([], increments=[(key, ttl_seconds)])

    async def write(
        self,
        commands: list[tuple[str, ...]],
        increments: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Send commands (as raw argument tuples) and counter bumps in one round trip."""
        if not commands and not increments:
            return

        def queue(pipe: AnyPipeline) -> None:
            for args in commands:
                pipe.execute_command(*args)
            for key, ttl in increments:
                pipe.incr(key)
                pipe.expire(key, ttl)

        try:
            await self.run(queue)
        except RedisError as exc:
            self.degraded("write", exc)

    async def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        try:
            payload = json.dumps(value, separators=(",", ":"))
            await self.run(lambda pipe: pipe.set(key, payload, ex=ttl_seconds))
        except RedisError as exc:
            self.degraded("set", exc)

    async def close(self) -> None:
        await self.pipeline.drain()
        await self.client.aclose()
