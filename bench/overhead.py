"""What idempotency and rate limiting add to one booking, as a ratio to the same path without them.

    uv run python bench/overhead.py [--bookings 2000]

Drives the real app in-process (PostgreSQL + Redis, one client, sequential requests, so the
numbers are per-request cost, not contention) three ways: the full path; rate limiting on top;
and the path with the Idempotency-Key layer's Redis work and the rate limiter replaced by
pass-throughs (the database's unique key still deduplicates). Prints median and p99 per variant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import REDIS_URL, drop_postgres, fresh_postgres  # noqa: E402
from core.idempotency import IdempotentRequest  # noqa: E402
from core.ratelimit import RateLimiter  # noqa: E402
from core.storage import build_storage  # noqa: E402
from tests.conftest import make_settings, running_api  # noqa: E402


async def measure(url: str, n: int, *, rate_limited: bool) -> list[float]:
    settings = make_settings(
        url,
        redis_url=REDIS_URL,
        rate_limit_enabled=rate_limited,
        rate_limit_authenticated="1000000/minute",
    )
    async with running_api(settings) as api:
        organizer, buyer = await api.user("organizer"), await api.user()
        event = await api.event(
            organizer, tiers=[{"code": "GA", "name": "GA", "priceCents": 1, "capacity": 1_000_000}]
        )
        for _ in range(50):  # warm up pools and caches
            await api.book(buyer, event["id"])
        timings = []
        for _ in range(n):
            started = time.perf_counter()
            r = await api.book(buyer, event["id"], key=uuid.uuid4().hex)
            timings.append(time.perf_counter() - started)
            assert r.status_code == 201
        return timings


async def bypass(self: IdempotentRequest, handler):  # type: ignore[no-untyped-def]
    return await handler()


async def no_limit(self: RateLimiter, *_: object) -> None:
    return None


def summary(name: str, timings: list[float], base: float) -> str:
    mean = statistics.median(timings) * 1000
    p99 = sorted(timings)[int(0.99 * len(timings))] * 1000
    return f"{name:<40} median {mean:6.2f} ms  p99 {p99:6.2f} ms  ratio {mean / base:4.2f}"


@contextlib.contextmanager
def passthrough() -> Iterator[None]:
    original_run, original_hit = IdempotentRequest.run, RateLimiter.hit
    IdempotentRequest.run, RateLimiter.hit = bypass, no_limit  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        IdempotentRequest.run, RateLimiter.hit = original_run, original_hit  # type: ignore[method-assign]


async def main(n: int, rounds: int) -> None:
    url = fresh_postgres()
    storage = build_storage(url)
    await storage.migrate()
    await storage.close()
    results: dict[str, list[float]] = {"bare": [], "full": [], "limited": []}
    try:
        for _ in range(rounds):  # interleaved, so warm-up and table growth hit every variant alike
            results["full"] += await measure(url, n, rate_limited=False)
            results["limited"] += await measure(url, n, rate_limited=True)
            with passthrough():
                results["bare"] += await measure(url, n, rate_limited=True)
    finally:
        drop_postgres(url)
    bare, full, limited = results["bare"], results["full"], results["limited"]
    base = statistics.median(bare) * 1000
    print(summary("without idempotency layer or rate limit", bare, base))
    print(summary("with idempotency (Redis claim + save)", full, base))
    print(summary("with idempotency and rate limiting", limited, base))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bookings", type=int, default=1000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.bookings, args.rounds))
