"""Rate limits on the `limits` library's async API, stored in the shared Redis.

Fixed windows: one atomic INCR per hit, so a limit is exact across workers and instances.
If Redis is unreachable the limiter fails open and says so (logs, /ready).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from core.cache import Cache
from core.config import Settings
from core.errors import RateLimited


def _storage(settings: Settings, cache: Cache) -> RedisStorage:
    """The limits library's storage on the cache's Redis.

    One server (or the in-process fakeredis): the cache's own connection pool. A cluster:
    the library's cluster storage, with a client of its own (it cannot take one). Each fixed
    window is one key, counted by a one-key script, so nothing here spans two slots."""
    if not isinstance(cache.client, RedisCluster):
        return RedisStorage(
            "async+redis://",
            implementation="redispy",
            connection_pool=cache.client.connection_pool,  # type: ignore[arg-type]  # passed through to redis-py
        )
    url = cache.url or ""
    tls = url.startswith("rediss")
    return RedisClusterStorage(
        "async+redis+cluster://" + url.split("://", 1)[1],
        implementation="redispy",
        socket_timeout=cache.timeout,
        socket_connect_timeout=cache.timeout,
        ssl=tls,
    )


class RateLimiter:
    def __init__(self, settings: Settings, cache: Cache) -> None:
        self.enabled = settings.rate_limit_enabled
        self.cache = cache
        self.storage = _storage(settings, cache)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.anonymous = parse(settings.rate_limit_anonymous)
        self.authenticated = parse(settings.rate_limit_authenticated)
        self.login_ip = parse(settings.rate_limit_login_ip)
        self.login_account = parse(settings.rate_limit_login_account)
        self.login_account_ip = parse(settings.rate_limit_login_account_ip)

    async def close(self) -> None:
        """Close the cluster client the library made for itself (a single server's pool is
        the cache's, closed with it)."""
        bridge = self.storage.bridge
        if isinstance(bridge, RedispyBridge):
            client = bridge.get_connection()
            if isinstance(client, RedisCluster):
                await client.aclose()

    async def before_login(self, kind: str, account: str, ip: str) -> None:
        """Throttle a password check (`kind`: login, token) before it runs.

        Only failures count against an account, and an attacker who does not know the password
        must not keep its owner out: failures are limited tightly per (account, address), and
        per account only loosely, refusing then just the addresses that have been failing.
        """
        await self.hit(self.login_ip, f"{kind}-ip", ip)
        if not self.enabled:
            return
        pair = (f"{kind}-fail", account, ip)
        everywhere = (f"{kind}-fail-account", account)
        try:
            reset_at, pair_left = await self.limiter.get_window_stats(self.login_account_ip, *pair)
            if pair_left <= 0:
                raise self._refusal(self.login_account_ip, reset_at, pair_left)
            failing_here = pair_left < self.login_account_ip.amount
            if failing_here and not await self.limiter.test(self.login_account, *everywhere):
                reset_at, left = await self.limiter.get_window_stats(
                    self.login_account, *everywhere
                )
                raise self._refusal(self.login_account, reset_at, left)
        except (RedisError, RedisClusterException, OSError) as exc:
            self.cache.degraded("rate_limit", exc)

    async def login_failed(self, kind: str, account: str, ip: str) -> None:
        """Count a wrong password against the (account, address) pair and the account."""
        if not self.enabled:
            return
        try:
            await self.limiter.hit(self.login_account_ip, f"{kind}-fail", account, ip)
            await self.limiter.hit(self.login_account, f"{kind}-fail-account", account)
        except (RedisError, RedisClusterException, OSError) as exc:
            self.cache.degraded("rate_limit", exc)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> None:
        """Count one request against `item`; raise RateLimited (429) when it is over."""
        if not self.enabled:
            return
        try:
            allowed = await self.limiter.hit(item, *identifiers)
            if allowed:
                return
            reset_at, remaining = await self.limiter.get_window_stats(item, *identifiers)
        except (RedisError, RedisClusterException, OSError) as exc:
            self.cache.degraded("rate_limit", exc)
            return
        raise self._refusal(item, reset_at, remaining)

    @staticmethod
    def _refusal(item: RateLimitItem, reset_at: float, remaining: int) -> RateLimited:
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return RateLimited(
            "Too many requests; slow down",
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Limit": str(item.amount),
                "RateLimit-Remaining": str(remaining),
                "RateLimit-Reset": str(retry_after),
            },
        )
