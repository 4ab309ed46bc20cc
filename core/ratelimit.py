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

KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600
"""How long an address that signed in stays known to its account (renewed by each sign-in)."""


def _known_key(kind: str, account: str) -> str:
    return f"login-known:{kind}:{account}"


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
        per account loosely. Past the account's budget only the addresses that signed in to it
        before (and have not been failing) are still heard: guesses per minute no longer grow
        with the attacker's pool of addresses, and the owner's usual addresses keep working.
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
            if not await self.limiter.test(self.login_account, *everywhere):
                failing_here = pair_left < self.login_account_ip.amount
                if failing_here or not await self._known(kind, account, ip):
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

    async def login_succeeded(self, kind: str, account: str, ip: str) -> None:
        """Remember `ip` as one the account signs in from (30 days, renewed by each sign-in)."""
        if not self.enabled:
            return
        key = _known_key(kind, account)
        try:
            pipe = self.cache.client.pipeline(transaction=False)
            pipe.sadd(key, ip)
            pipe.expire(key, KNOWN_ADDRESS_SECONDS)
            await pipe.execute()
        except (RedisError, RedisClusterException, OSError) as exc:
            self.cache.degraded("rate_limit", exc)

    async def _known(self, kind: str, account: str, ip: str) -> bool:
        return bool(await self.cache.client.sismember(_known_key(kind, account), ip))

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
