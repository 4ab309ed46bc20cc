"""Floors: the booking path's round trips with (almost) nothing around them.

    uvicorn --app-dir bench floor:app --workers 2             the I/O alone, bare ASGI
    uvicorn --app-dir bench floor:framework_app --workers 2   the same I/O routed by FastAPI

bench/run.py starts both. Per POST /api/v1/bookings each does exactly the I/O the real booking
path does on PostgreSQL: claim the Idempotency-Key in Redis (SET NX GET), run the same reserve
statement (core.storage.sql.PG_RESERVE), save the response in Redis. Neither has auth,
idempotency rules, logging, metrics or error handling, so neither is a server to run: they
answer "how fast could a booking be on this machine at all?" and "what is left of that once
FastAPI routes the request and validates its body?". Configured by env: DATABASE_URL,
REDIS_URL.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Header, Response
from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.storage.records import new_id, new_ticket_number
from core.storage.sql import PG_RESERVE

OWNER_ID = "bench-floor"  # bookings need an owner, not a user row (no foreign key)
clients: dict[str, Any] = {}


async def _keep_session(_: asyncpg.Connection) -> None:
    """Nothing to reset between autocommit statements: skip asyncpg's reset query, as the app
    (SQLAlchemy's pool in autocommit) does, so the floor makes no round trip the app does not."""


@contextlib.asynccontextmanager
async def open_clients() -> AsyncIterator[None]:
    # The app's default pool size (DATABASE_POOL_SIZE), for a like-for-like floor.
    clients["pool"] = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=5, max_size=5, reset=_keep_session
    )
    clients["redis"] = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        yield
    finally:
        await clients["pool"].close()
        await clients["redis"].aclose()


async def book(idempotency_key: str, event_id: str, tier: str, quantity: int) -> bytes:
    """The booking's round trips: Redis claim, the reserve statement, Redis save."""
    redis_key = f"idem:{OWNER_ID}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"
    cache: aioredis.Redis = clients["redis"]
    await cache.set(redis_key, b'{"running":true}', nx=True, get=True, ex=60)
    now = datetime.now(UTC)
    values = {
        "b_id": new_id(),
        "b_ticket_number": new_ticket_number(),
        "b_event_id": event_id,
        "b_tier": tier,
        "b_quantity": quantity,
        "b_currency": "USD",
        "b_status": "confirmed",
        "b_expires_at": None,
        "b_owner_id": OWNER_ID,
        "b_partner_id": None,
        "b_external_ref": None,
        "b_idempotency_key": idempotency_key,
        "b_request_hash": "floor",
        "b_created_at": now,
        "b_updated_at": now,
    }
    async with clients["pool"].acquire() as connection:
        record = await connection.fetchrow(PG_RESERVE.sql, *(values[n] for n in PG_RESERVE.names))
    booking = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in dict(record).items()}
    body = json.dumps({"success": True, "data": booking}).encode()
    saved = {"status": 201, "body": base64.b64encode(body).decode()}
    await cache.set(redis_key, json.dumps(saved), ex=86400)
    return body


def health_body() -> dict[str, str]:
    return {"status": "ok", "timestamp": datetime.now(UTC).isoformat()}


# --- the I/O alone: a bare ASGI app ----------------------------------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["path"] == "/health":
        await _answer(send, 200, json.dumps(health_body()).encode())
    else:
        request = json.loads(await _body(receive))
        key = dict(scope["headers"]).get(b"idempotency-key", b"").decode()
        body = await book(key, request["eventId"], request["tier"], request["quantity"])
        await _answer(send, 201, body)


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    async with contextlib.AsyncExitStack() as stack:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await stack.enter_async_context(open_clients())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                break
    await send({"type": "lifespan.shutdown.complete"})


# --- the same I/O routed by FastAPI, with a validated body -----------------------------------


class BookingBody(BaseModel):
    event_id: str = Field(alias="eventId")
    tier: str
    quantity: int


@contextlib.asynccontextmanager
async def _framework_lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with open_clients():
        yield


framework_app = FastAPI(lifespan=_framework_lifespan)


@framework_app.get("/health")
async def framework_health() -> dict[str, str]:
    return health_body()


@framework_app.post("/api/v1/bookings", status_code=201)
async def framework_book(
    body: BookingBody, idempotency_key: Annotated[str, Header(alias="Idempotency-Key")]
) -> Response:
    booking = await book(idempotency_key, body.event_id, body.tier, body.quantity)
    return Response(booking, 201, media_type="application/json")
