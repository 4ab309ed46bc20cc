from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Annotated
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from core.deps import Context, CurrentPrincipal, app_context, client_ip
from core.errors import AppError
from core.routing import ApiRoute
from core.schemas import Envelope, dump, ok
from core.streams import HEARTBEAT, OwnStream, sse_frame
from modules.queue.schemas import PlaceOut, QueueStatsOut
from modules.queue.service import QueueService, topic

router = APIRouter(prefix="/events", tags=["queue"], route_class=ApiRoute)
STREAM_MIN_SECONDS = 1.0
"""A stream reads its place at most once a second (a burst of admissions: one update)."""
STREAM_REFRESH_SECONDS = 10.0
"""…and at least this often (or every STREAM_HEARTBEAT_SECONDS if sooner), so its ETA
follows the measured rate; a heartbeat if it did not change."""


async def queue_service(request: Request) -> QueueService:
    return QueueService(app_context(request))


Queue = Annotated[QueueService, Depends(queue_service)]


@router.post("/{event_id}/queue", status_code=201, response_model=Envelope[PlaceOut])
async def join_queue(event_id: str, principal: CurrentPrincipal, queue: Queue) -> JSONResponse:
    """Join the event's waiting room: 201 the first time, 200 with the same place after (one
    place per account). Before `opensAt` the place is `prequeue`; at opening the pre-queue is
    drawn in a uniformly random order, and later joiners line up behind it."""
    place, created = await queue.join(principal, event_id)
    headers = {"Location": f"/api/v1/events/{quote(event_id, safe='')}/queue/me"}
    return ok(dump(place), status=201 if created else 200, headers=headers)


@router.get("/{event_id}/queue/me", response_model=Envelope[PlaceOut])
async def my_place(event_id: str, principal: CurrentPrincipal, queue: Queue) -> JSONResponse:
    """Your place; once `admitted`, `admissionToken` goes in the Admission-Token header of
    POST /bookings and /orders for this event until `admittedUntil`."""
    return ok(dump(await queue.me(principal, event_id)))


@router.get(
    "/{event_id}/queue/stream",
    responses={
        200: {
            "description": "Server-Sent Events: `place` events (the body of …/queue/me's "
            "`data`) at connect and whenever the place, state or ETA changes; heartbeats. "
            "It counts against the live-stream limits of GET …/availability/stream "
            "(429 TOO_MANY_STREAMS, 503 STREAMS_FULL).",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def place_stream(
    event_id: str, request: Request, principal: CurrentPrincipal, queue: Queue, ctx: Context
) -> OwnStream:
    """Your place, live (across workers). It ends after `admitted` or `expired` is sent, or
    after STREAM_IDLE_SECONDS without a change (an EventSource reconnects)."""
    first = await queue.me(principal, event_id)  # 404 / 409 before the stream starts
    refresh = min(STREAM_REFRESH_SECONDS, ctx.settings.stream_heartbeat_seconds)

    async def frames() -> AsyncGenerator[bytes]:
        place, last, n = first, None, 0
        with ctx.broadcast.listen(topic(event_id)) as changed:
            while True:
                changed.clear()
                if place != last:
                    n += 1
                    yield sse_frame(orjson.dumps(dump(place)), "place", str(n))
                    last = place
                else:
                    yield HEARTBEAT
                if place.state in ("admitted", "expired"):
                    return
                await asyncio.sleep(STREAM_MIN_SECONDS)
                try:
                    await asyncio.wait_for(changed.wait(), refresh)
                except TimeoutError:
                    pass
                try:
                    place = await queue.me(principal, event_id)
                except AppError:
                    return  # the room went away (disabled, the cache down): the client retries

    return ctx.streams.own_stream(frames(), client_ip(request), principal.id)


@router.get("/{event_id}/queue/stats", response_model=Envelope[QueueStatsOut])
async def queue_stats(event_id: str, principal: CurrentPrincipal, queue: Queue) -> JSONResponse:
    """The organizer's view: how many wait, were admitted, are active; the measured rate and
    the median wait."""
    return ok(dump(await queue.stats(principal, event_id)))
