"""The cache's auto-pipeline, against the real Redis and the in-process fakeredis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import RedisError, ResponseError

from core.cache import Cache


@pytest.fixture
async def cache(cache_url: str | None) -> AsyncIterator[Cache]:
    cache = Cache(cache_url)
    yield cache
    await cache.close()


def count_round_trips(cache: Cache) -> list[int]:
    """Wrap the client's `pipeline()` to record each pipeline's size when it is sent."""
    sent: list[int] = []
    make = cache.client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a: Any, **kw: Any) -> Any:
            sent.append(len(pipe))
            return await execute(*a, **kw)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    cache.client.pipeline = pipeline  # type: ignore[method-assign]
    return sent


async def test_commands_of_one_turn_share_one_round_trip(cache: Cache) -> None:
    key = f"test:counter:{uuid.uuid4().hex}"
    sent = count_round_trips(cache)
    replies = await asyncio.gather(*(cache.run(lambda p: p.incr(key)) for _ in range(50)))
    assert sorted(r[0] for r in replies) == list(range(1, 51))  # each caller got its own reply
    assert sent == [50]
    # a later turn is a new round trip; an op may queue several commands and gets all replies
    assert await cache.run(lambda p: p.incr(key).expire(key, 60)) == [51, True]
    assert sent == [50, 2]


async def test_a_failing_command_fails_only_its_caller(cache: Cache) -> None:
    text, counter = f"test:text:{uuid.uuid4().hex}", f"test:counter:{uuid.uuid4().hex}"
    await cache.run(lambda p: p.set(text, "not a number", ex=60))
    bad, broken, good = await asyncio.gather(
        cache.run(lambda p: p.incr(text)),
        cache.run(lambda p: p.incr(counter).no_such_command()),  # type: ignore[attr-defined]
        cache.run(lambda p: p.incr(counter).expire(counter, 60)),
        return_exceptions=True,
    )
    assert isinstance(bad, ResponseError)  # refused by Redis
    assert isinstance(broken, AttributeError)  # failed while queueing: its INCR was not sent
    assert good == [1, True]


async def test_a_cancelled_caller_does_not_disturb_the_others(cache: Cache) -> None:
    key = f"test:counter:{uuid.uuid4().hex}"
    cancelled = asyncio.ensure_future(cache.run(lambda p: p.incr(key)))
    others = [asyncio.ensure_future(cache.run(lambda p: p.incr(key))) for _ in range(3)]
    await asyncio.sleep(0)
    cancelled.cancel()
    replies = await asyncio.gather(*others)
    # the cancelled caller's INCR was already queued, so it still ran: the others count 2..4
    assert sorted(r[0] for r in replies) == [2, 3, 4]
    assert cancelled.cancelled()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis+cluster://127.0.0.1:1"])
async def test_unreachable_redis_fails_each_caller_and_writes_fail_open(url: str) -> None:
    cache = Cache(url)  # nothing listens there
    try:
        results = await asyncio.gather(
            *(cache.run(lambda p: p.incr("k")) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, RedisError) for r in results)
        await cache.write([("SET", "k", "v")], [("gen", 60)])  # logged, not raised
        assert await cache.get_many_json("a:{t}", "b:{t}") == [None, None]
    finally:
        await cache.close()


async def test_close_sends_what_is_still_queued(shared_redis_url: str) -> None:
    key = f"test:counter:{uuid.uuid4().hex}"
    cache = Cache(shared_redis_url)
    pending = asyncio.ensure_future(cache.run(lambda p: p.incr(key).expire(key, 60)))
    await asyncio.sleep(0)  # queued, not yet sent
    await cache.close()
    assert pending.done() and pending.result() == [1, True]
    reader = Cache(shared_redis_url)
    try:
        assert await reader.run(lambda p: p.get(key)) == [b"1"]
    finally:
        await reader.close()


@pytest.mark.redis_cluster
async def test_keys_read_together_must_share_a_cluster_slot(redis_cluster_url: str) -> None:
    cache = Cache(redis_cluster_url)
    try:
        tag = uuid.uuid4().hex
        await cache.set_json(f"a:{{{tag}}}", 1, 60)
        assert await cache.get_many_json(f"a:{{{tag}}}", f"b:{{{tag}}}") == [1, None]
        with pytest.raises(ValueError, match="cluster slots"):
            await cache.get_many_json(f"a:{tag}", f"b:{tag}")  # no tag: two slots
    finally:
        await cache.close()


async def test_availability_keys_share_a_slot() -> None:
    from redis.crc import key_slot

    from modules.events.service import availability_key, generation_key

    for event_id in ("e1", "tiered-show", "with}brace", "{odd"):
        slots = {key_slot(k(event_id).encode()) for k in (availability_key, generation_key)}
        assert len(slots) == 1, event_id
