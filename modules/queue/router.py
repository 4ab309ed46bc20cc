from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from core.deps import Context, CurrentPrincipal, app_context
from core.errors import AppError
from core.routing import ApiRoute
from core.schemas import Envelope, dump, ok
from modules.queue.schemas import PlaceOut, QueueStatsOut
from modules.queue.service import QueueService, topic

router = APIRouter(prefix="/events", tags=["queue"], route_class=ApiRoute)
STREAM_MIN_SECONDS = 1.0
"""A stream reads its place at most once a second (a burst of admissions: one update)."""
STREAM_REFRESH_SECONDS = 10.0
"""…and at least this often, so its ETA follows the measured rate."""
STREAM_PING_SECONDS = 15


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
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `place` events (the body of …/queue/me's "
            "`data`) at connect and whenever the place, state or ETA changes; heartbeats.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def place_stream(
    event_id: str, principal: CurrentPrincipal, queue: Queue, ctx: Context
) -> EventSourceResponse:
    """Your place, live (across workers). It ends after `admitted` or `expired` is sent."""
    first = await queue.me(principal, event_id)  # 404 / 409 before the stream starts

    async def updates() -> AsyncIterator[ServerSentEvent]:
        place, last = first, None
        with ctx.broadcast.listen(topic(event_id)) as changed:
            while True:
                changed.clear()
                if place != last:
                    yield ServerSentEvent(data=orjson.dumps(dump(place)).decode(), event="place")
                    last = place
                if place.state in ("admitted", "expired"):
                    return
                await asyncio.sleep(STREAM_MIN_SECONDS)
                try:
                    await asyncio.wait_for(changed.wait(), STREAM_REFRESH_SECONDS)
                except TimeoutError:
                    pass
                try:
                    place = await queue.me(principal, event_id)
                except AppError:
                    return  # the room went away (disabled, the cache down): the client retries

    return EventSourceResponse(updates(), ping=STREAM_PING_SECONDS)


@router.get("/{event_id}/queue/stats", response_model=Envelope[QueueStatsOut])
async def queue_stats(event_id: str, principal: CurrentPrincipal, queue: Queue) -> JSONResponse:
    """The organizer's view: how many wait, were admitted, are active; the measured rate and
    the median wait."""
    return ok(dump(await queue.stats(principal, event_id)))
