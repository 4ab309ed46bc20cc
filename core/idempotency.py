"""The Idempotency-Key layer (draft-ietf-httpapi-idempotency-key-header, Stripe semantics).

A key is claimed with one atomic Redis command (SET NX GET): the first request runs, a
concurrent duplicate gets 409, a later one gets the stored response again. Redis is the fast
path only; routes whose effects must never repeat (bookings) also carry the key to storage,
where a unique index is the durable backstop.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request, Response
from redis.exceptions import RedisError

from core.cache import Cache
from core.errors import AppError, Conflict, ValidationFailed, app_error_response

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RUNNING_TTL_SECONDS = 60
REPLAYED_HEADERS = ("content-type", "location", "etag")


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
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), canonical)).hexdigest()


def _storable_response(response: Response) -> bool:
    if response.status_code >= 500 or response.status_code in (400, 422, 429):
        return False
    return response.status_code != 409 or b"IDEMPOTENCY_REQUEST_IN_PROGRESS" not in response.body


@dataclass(slots=True)
class IdempotentRequest:
    """One request's key, scoped to its caller, and the fingerprint of what it asks."""

    cache: Cache
    key: str | None
    scope: str
    fingerprint: str
    ttl_seconds: int

    @property
    def redis_key(self) -> str:
        digest = hashlib.sha256(self.key.encode() if self.key else b"").hexdigest()[:32]
        return f"idem:{self.scope}:{digest}"

    async def run(self, handler: Callable[[], Awaitable[Response]]) -> Response:
        """Run `handler` at most once per key; replay its stored response afterwards."""
        if self.key is None:
            return await handler()
        stored = await self._claim()
        if stored is not None:
            return self._replay(stored)
        # Cache bumps the handler makes (availability generations) travel with the stored
        # response: one Redis round trip after the work instead of two.
        async with self.cache.batch() as bumps:
            try:
                response = await handler()
            except AppError as exc:
                response = app_error_response(exc)
            except BaseException:
                await self.cache.write([("DEL", self.redis_key)], bumps)
                raise
        if _storable_response(response):
            await self.cache.write([self._save_command(response)], bumps)
        else:
            await self.cache.write([("DEL", self.redis_key)], bumps)
        return response

    async def _claim(self) -> dict[str, Any] | None:
        marker = json.dumps({"fp": self.fingerprint, "running": True})
        try:
            (previous,) = await self.cache.run(
                lambda pipe: pipe.set(
                    self.redis_key, marker, nx=True, get=True, ex=RUNNING_TTL_SECONDS
                )
            )
        except RedisError as exc:
            self.cache.degraded("idempotency_claim", exc)
            return None  # fail open: storage's unique key still prevents a second booking
        return None if previous is None else dict(json.loads(cast(bytes, previous)))

    def _replay(self, stored: dict[str, Any]) -> Response:
        if stored["fp"] != self.fingerprint:
            raise IdempotencyKeyReused()
        if stored.get("running"):
            raise IdempotencyInProgress()
        headers = {**stored["headers"], REPLAYED_HEADER: "true"}
        return Response(base64.b64decode(stored["body"]), stored["status"], headers=headers)

    def _save_command(self, response: Response) -> tuple[str, ...]:
        headers = {k: v for k, v in response.headers.items() if k.lower() in REPLAYED_HEADERS}
        record = {
            "fp": self.fingerprint,
            "status": response.status_code,
            "headers": headers,
            "body": base64.b64encode(bytes(response.body)).decode(),
        }
        payload = json.dumps(record, separators=(",", ":"))
        return ("SET", self.redis_key, payload, "EX", str(self.ttl_seconds))


async def idempotent_request(
    request: Request, cache: Cache, scope: str, ttl_seconds: int, *, required: bool
) -> IdempotentRequest:
    key = parse_key(request.headers.get(HEADER), required=required)
    return IdempotentRequest(
        cache=cache,
        key=key,
        scope=scope,
        # The scope's path, not `request.url.path`: building a URL object costs ~2% of a booking.
        fingerprint=fingerprint(request.method, request.scope["path"], await request.body()),
        ttl_seconds=ttl_seconds,
    )
