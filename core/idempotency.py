"""The Idempotency-Key layer (draft-ietf-httpapi-idempotency-key-header, Stripe semantics).

Declared once per route: a route whose `openapi_extra` comes from `idempotent()` is run by
`core.routing.ApiRoute` under a guard that claims the key before the endpoint runs and stores
its answer after. The same declaration puts the header in the OpenAPI document.

A key is claimed with one atomic Redis command (SET NX GET): the first request runs, a
concurrent duplicate gets 409, a later one gets the stored response again. The claim is a
lease of IDEMPOTENCY_LEASE_SECONDS that its worker renews while the request runs (one
pipelined EXPIRE for all its claims, every third of a lease; a request that ends sooner costs
nothing more), so a claim whose worker died lapses within seconds and a retry runs.

Redis is the fast path only; routes whose effects must never repeat (bookings, orders) also
carry the key to storage, where a unique index is the durable backstop.

Which answers are stored (and so replayed) and why:
- 2xx, and the refusals that describe the state the request met (404, 409, 410, 412): a retry
  with the same key gets the same answer, as if the first one had arrived.
- Not stored: 400 and 422 (the request itself was malformed: the client may fix it and retry
  with the same key), 401/403 (credentials may be renewed), 429 (a throttle, not an answer),
  5xx (our failure; the retry may succeed). The claim is released so the retry runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from fastapi import Request, Response
from redis.exceptions import RedisError

from core.cache import Cache
from core.errors import AppError, Conflict, ValidationFailed
from core.jsonbody import InvalidJson, parse_json

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REPLAYED_HEADERS = ("content-type", "location", "etag")
STORED_REFUSALS = frozenset({404, 409, 410, 412})
EXTENSION = "x-idempotency-key"
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"

Mode = Literal["required", "honoured"]
Renderer = Callable[[AppError], Response]


class IdempotencyKeyRequired(AppError):
    status_code, code = 400, "IDEMPOTENCY_KEY_REQUIRED"
    message = "This request needs an Idempotency-Key header"


class InvalidIdempotencyKey(AppError):
    status_code, code = 400, "INVALID_IDEMPOTENCY_KEY"
    message = "Idempotency-Key must be 1-255 printable ASCII characters"


class IdempotencyKeyReused(ValidationFailed):
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was used for a different request"


class IdempotencyInProgress(Conflict):
    code = "IDEMPOTENCY_REQUEST_IN_PROGRESS"
    message = "A request with this Idempotency-Key is still being processed"


def idempotent(*, required: bool = False) -> dict[str, Any]:
    """The `openapi_extra` of a route that honours (or requires) an Idempotency-Key."""
    mode: Mode = "required" if required else "honoured"
    return {
        EXTENSION: mode,
        "parameters": [
            {
                "name": HEADER,
                "in": "header",
                "required": required,
                "description": "Retries with the same key replay the first answer (24 h). A key "
                "is one request: sent again with another body or on another route (one key space "
                "per caller) it is 422 IDEMPOTENCY_KEY_REUSED.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": KEY_PATTERN,
                },
            }
        ],
    }


def parse_key(raw: str | None, *, required: bool) -> str | None:
    if raw is None:
        if required:
            raise IdempotencyKeyRequired()
        return None
    if not 1 <= len(raw) <= 255 or not all(" " <= c <= "~" for c in raw):
        raise InvalidIdempotencyKey()
    return raw


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Hash of the request: JSON bodies are compared by content, not by whitespace."""
    try:
        canonical = orjson.dumps(parse_json(body), option=orjson.OPT_SORT_KEYS)
    except InvalidJson:
        canonical = body
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), canonical)).hexdigest()


def storable(status: int) -> bool:
    return status < 400 or status in STORED_REFUSALS


class Leases:
    """The claims this worker's requests hold, renewed together while any is held.

    `EXPIRE … GT` only ever lengthens a key's life: a renewal that lands after the request
    stored its answer (kept for a day) or released its claim changes nothing."""

    def __init__(self, cache: Cache, seconds: int) -> None:
        self.cache = cache
        self.seconds = seconds
        self.held: set[str] = set()
        self.renewer: asyncio.Task[None] | None = None

    def hold(self, key: str) -> None:
        self.held.add(key)
        if self.renewer is None or self.renewer.done():
            self.renewer = asyncio.create_task(self._renew())

    def release(self, key: str) -> None:
        self.held.discard(key)

    async def _renew(self) -> None:
        while self.held:
            await asyncio.sleep(self.seconds / 3)
            ttl = str(self.seconds)
            try:
                await self.cache.write([("EXPIRE", key, ttl, "GT") for key in self.held])
            except RedisError as exc:
                self.cache.degraded("idempotency_lease", exc)


_leases: weakref.WeakKeyDictionary[Cache, Leases] = weakref.WeakKeyDictionary()


def leases(cache: Cache, seconds: int) -> Leases:
    """The one set of leases of this cache (a worker has one cache)."""
    held = _leases.get(cache)
    if held is None:
        held = _leases[cache] = Leases(cache, seconds)
    return held


@dataclass(slots=True)
class IdempotentRequest:
    """One request's key, scoped to its caller, and the fingerprint of what it asks."""

    cache: Cache
    key: str | None
    scope: str
    fingerprint: str
    ttl_seconds: int
    leases: Leases

    @property
    def redis_key(self) -> str:
        digest = hashlib.sha256(self.key.encode() if self.key else b"").hexdigest()[:32]
        return f"idem:{self.scope}:{digest}"

    async def run(
        self,
        handler: Callable[[], Awaitable[Response]],
        render: Renderer,
        checked: Awaitable[Any],
    ) -> Response:
        """Run `handler` at most once per key; replay its stored response afterwards.

        `checked` (the caller's token check) is awaited together with the claim, so that
        their Redis commands share one round trip; if it fails, a claim taken is released."""
        if self.key is None:
            await checked
            return await handler()
        stored, verdict = await asyncio.gather(self.claim(), checked, return_exceptions=True)
        if isinstance(verdict, BaseException):
            if stored is None:
                await self.cache.write([("DEL", self.redis_key)])
            raise verdict
        if isinstance(stored, BaseException):
            raise stored
        if stored is not None:
            return self.replay(stored)
        self.leases.hold(self.redis_key)
        try:
            response = await handler()
        except AppError as exc:
            response = render(exc)
        except BaseException:
            self.leases.release(self.redis_key)
            await self.cache.write([("DEL", self.redis_key)])
            raise
        self.leases.release(self.redis_key)
        await self.finish(response)
        return response

    async def claim(self) -> dict[str, Any] | None:
        """Take the key; the stored record when someone already did (None: go ahead)."""
        marker = orjson.dumps({"fp": self.fingerprint, "running": True})
        try:
            (previous,) = await self.cache.run(
                lambda pipe: pipe.set(
                    self.redis_key, marker, nx=True, get=True, ex=self.leases.seconds
                )
            )
        except RedisError as exc:
            self.cache.degraded("idempotency_claim", exc)
            return None  # fail open: storage's unique key still prevents a second booking
        return None if previous is None else dict(orjson.loads(cast(bytes, previous)))

    def replay(self, stored: dict[str, Any]) -> Response:
        if stored["fp"] != self.fingerprint:
            raise IdempotencyKeyReused()
        if stored.get("running"):
            raise IdempotencyInProgress()
        headers = {**stored["headers"], REPLAYED_HEADER: "true"}
        return Response(base64.b64decode(stored["body"]), stored["status"], headers=headers)

    async def finish(self, response: Response, extra: Sequence[tuple[str, ...]] = ()) -> None:
        """Store the answer (or release the claim), with `extra` commands in the same trip."""
        if storable(response.status_code):
            command = self._save_command(response)
        else:
            command = ("DEL", self.redis_key)
        await self.cache.write([command, *extra])

    def _save_command(self, response: Response) -> tuple[str, ...]:
        headers = {k: v for k, v in response.headers.items() if k.lower() in REPLAYED_HEADERS}
        record = {
            "fp": self.fingerprint,
            "status": response.status_code,
            "headers": headers,
            "body": base64.b64encode(bytes(response.body)).decode(),
        }
        return ("SET", self.redis_key, orjson.dumps(record).decode(), "EX", str(self.ttl_seconds))


async def open_request(
    request: Request,
    cache: Cache,
    scope: str,
    ttl_seconds: int,
    lease_seconds: int,
    *,
    required: bool,
) -> IdempotentRequest:
    """The guard for this request (400 for a missing required or malformed key)."""
    key = parse_key(request.headers.get(HEADER), required=required)
    return IdempotentRequest(
        cache=cache,
        key=key,
        scope=scope,
        # The scope's path, not `request.url.path`: building a URL object costs ~2% of a booking.
        fingerprint=fingerprint(request.method, request.scope["path"], await request.body()),
        ttl_seconds=ttl_seconds,
        leases=leases(cache, lease_seconds),
    )
