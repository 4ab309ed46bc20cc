"""Token versions: a role change, a logout or a new partner secret ends old access tokens now.

An access token carries its account's token version (`tv`) from when it was issued; those
actions bump the version in storage. Every authenticated request compares its token's version
with the account's current one, read from Redis (one GET, sent in the pipeline the request's
other cache commands travel in) and from storage on a miss. A bump overwrites the cached
version itself, so the old tokens stop working at once in every worker and instance; the
entry's expiry only bounds how long a bump made where this cache is not reachable (the CLI in
embedded mode) takes to be seen.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from core.cache import Cache
from core.errors import InvalidToken
from core.security import Principal
from core.storage.port import Storage

VERSION_CACHE_SECONDS = 300


class TokenRevoked(InvalidToken):
    message = (
        "This access token was revoked (a role change, a logout or a new secret); sign in again"
    )


def _key(account_id: str, *, partner: bool) -> str:
    return f"tv:{'p' if partner else 'u'}:{account_id}"


class TokenVersions:
    def __init__(self, cache: Cache, storage: Storage) -> None:
        self.cache = cache
        self.storage = storage

    async def check(self, principal: Principal) -> None:
        """Refuse a token older than its account's current version, or whose account is gone."""
        current = await self.current(principal.id, partner=principal.is_partner)
        if current is None:
            raise InvalidToken()
        if principal.token_version < current:
            raise TokenRevoked()

    async def current(self, account_id: str, *, partner: bool) -> int | None:
        key = _key(account_id, partner=partner)
        try:
            (cached,) = await self.cache.run(lambda pipe: pipe.get(key))
        except RedisError as exc:
            self.cache.degraded("token_version", exc)
            return await self._stored(account_id, partner=partner)
        if cached is not None:
            return int(cached)
        version = await self._stored(account_id, partner=partner)
        if version is not None:
            # NX: a fill that read storage before a bump must not overwrite the bump's value.
            await self._set(key, version, only_if_missing=True)
        return version

    async def bumped(self, account_id: str, version: int, *, partner: bool) -> None:
        """Publish an account's new version (after storage bumped it)."""
        await self._set(_key(account_id, partner=partner), version, only_if_missing=False)

    async def _stored(self, account_id: str, *, partner: bool) -> int | None:
        account = await (
            self.storage.partners.get(account_id) if partner else self.storage.users.get(account_id)
        )
        return None if account is None else account.token_version

    async def _set(self, key: str, version: int, *, only_if_missing: bool) -> None:
        try:
            await self.cache.run(
                lambda pipe: pipe.set(key, version, ex=VERSION_CACHE_SECONDS, nx=only_if_missing)
            )
        except RedisError as exc:
            self.cache.degraded("token_version", exc)
