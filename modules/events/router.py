from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from core.deps import (
    Context,
    CurrentPrincipal,
    app_context,
    client_ip,
    optional_principal,
    require_role,
)
from core.errors import AppError
from core.idempotency import idempotent
from core.pagination import Cursor
from core.routing import ApiRoute
from core.schemas import Envelope, dump, ok
from core.security import Principal
from core.storage.records import Event, EventStatus
from core.streams import LiveStream, sse_frame
from modules.events.schemas import AvailabilityOut, EventCreate, EventOut, EventPatch
from modules.events.service import EventService, changed_topic

router = APIRouter(prefix="/events", tags=["events"], route_class=ApiRoute)


async def event_service(request: Request) -> EventService:
    return EventService(app_context(request))


Events = Annotated[EventService, Depends(event_service)]
Organizer = Annotated[Principal, Depends(require_role("organizer", "admin"))]
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


class InvalidIfMatch(AppError):
    status_code, code, message = (
        400,
        "INVALID_IF_MATCH",
        "If-Match must be the event's version number or *",
    )


IF_MATCH_PATTERN = r'^[ \t]*(\*|(W/)?"?[0-9]{1,18}"?)[ \t]*$'
"""The event's version (its ETag, quoted or not, weak or not) or `*`."""
_IF_MATCH = re.compile(IF_MATCH_PATTERN)


def _if_match_schema(schema: dict[str, Any]) -> None:
    """A string or absent: the header has no null (a generator would send the text "null")."""
    schema.pop("anyOf", None)
    schema.update(type="string", pattern=IF_MATCH_PATTERN)


def _version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    matched = _IF_MATCH.fullmatch(if_match)
    if matched is None:
        raise InvalidIfMatch()
    if matched.group(1) == "*":
        return None  # RFC 9110 §13.1.1: `*` matches any current version
    return int(matched.group(1).removeprefix("W/").strip('"'))


def _event_response(event: Event, status: int = 200) -> JSONResponse:
    return ok(EventOut.of(event), status=status, headers={"ETag": f'"{event.version}"'})


@router.get("", response_model=Envelope[list[EventOut]])
async def list_events(
    events: Events,
    principal: MaybePrincipal,
    status: EventStatus | None = None,
    starts_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    starts_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> JSONResponse:
    found, next_cursor = await events.find(
        principal,
        status=status,
        starts_from=starts_from,
        starts_to=starts_to,
        text=q,
        limit=limit,
        cursor=cursor,
    )
    listed = [EventOut.of(e, staff=events.staff(principal, e)) for e in found]
    return ok(listed, meta={"limit": limit, "nextCursor": next_cursor})


@router.post("", status_code=201, response_model=Envelope[EventOut], openapi_extra=idempotent())
async def create_event(body: EventCreate, principal: Organizer, events: Events) -> Response:
    return _event_response(await events.create(principal, body), status=201)


@router.get("/{event_id}", response_model=Envelope[EventOut])
async def get_event(event_id: str, events: Events, principal: MaybePrincipal) -> JSONResponse:
    event = await events.visible(principal, event_id)
    counts, _ = await events.availability(event_id)
    view = EventOut.of(event, counts, staff=events.staff(principal, event))
    return ok(view, headers={"ETag": f'"{event.version}"'})


@router.get("/{event_id}/availability", response_model=Envelope[AvailabilityOut])
async def availability(event_id: str, events: Events, principal: MaybePrincipal) -> JSONResponse:
    await events.visible(principal, event_id)
    return ok(dump(await events.availability_out(event_id)))


@router.get(
    "/{event_id}/availability/stream",
    responses={
        200: {
            "description": "Server-Sent Events: `availability` events (the same body as "
            "GET …/availability's `data`) at connect and whenever the seats change, and "
            "heartbeat comments. Reconnecting (with or without Last-Event-ID) resumes with "
            "the current availability: it is a state, not a log. A stream that carried no "
            "update for STREAM_IDLE_SECONDS is closed (reconnect). Limits: STREAM_MAX_PER_IP "
            "and STREAM_MAX_PER_ACCOUNT open streams (429 TOO_MANY_STREAMS), "
            "STREAM_MAX_PER_WORKER in all (503 STREAMS_FULL), both with Retry-After.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def availability_stream(
    event_id: str, request: Request, events: Events, principal: MaybePrincipal, ctx: Context
) -> LiveStream:
    """Live availability, across workers and instances (a change anywhere reaches every
    subscriber within a second; bursts are coalesced to a few updates per second). Each
    change is computed once per process and the same bytes go to every stream."""
    await events.visible(principal, event_id)

    async def frame() -> bytes:
        out = await events.availability_out(event_id)
        stamp = str(int(out.as_of.timestamp() * 1000))
        return sse_frame(orjson.dumps(dump(out)), "availability", stamp)

    account = principal.id if principal is not None else None
    return ctx.streams.stream(changed_topic(event_id), frame, client_ip(request), account)


@router.patch("/{event_id}", response_model=Envelope[EventOut], openapi_extra=idempotent())
async def update_event(
    event_id: str,
    body: EventPatch,
    principal: CurrentPrincipal,
    events: Events,
    if_match: Annotated[
        str | None,
        Header(
            json_schema_extra=_if_match_schema,  # checked by _version: a 400
            description="The event's version (its ETag) or *: 412 if it is no longer current",
        ),
    ] = None,
) -> Response:
    version = _version(if_match)
    return _event_response(await events.update(principal, event_id, body, version))


def _transition_route(action: Literal["publish", "cancel", "complete"]) -> None:
    async def transition(event_id: str, principal: CurrentPrincipal, events: Events) -> Response:
        return _event_response(await events.transition(principal, event_id, action))

    transition.__name__ = f"{action}_event"
    router.post(
        f"/{{event_id}}/{action}",
        response_model=Envelope[EventOut],
        name=f"{action}_event",
        openapi_extra=idempotent(),
    )(transition)


for _action in ("publish", "cancel", "complete"):
    _transition_route(_action)


@router.delete("/{event_id}", status_code=204)
async def delete_event(event_id: str, principal: CurrentPrincipal, events: Events) -> Response:
    await events.delete(principal, event_id)
    return Response(status_code=204)
