from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from core.deps import CurrentPrincipal, app_context, require_role
from core.pagination import Cursor, decode_cursor, encode_cursor
from core.routing import ApiRoute
from core.schemas import Envelope, ok
from core.security import Principal
from core.storage.records import Change
from core.storage.requests import ChangeQuery
from modules.activity.schemas import ChangeOut
from modules.activity.service import ActivityService

router = APIRouter(tags=["activity"], route_class=ApiRoute)
Admin = Annotated[Principal, Depends(require_role("admin"))]
Limit = Annotated[int, Query(ge=1, le=100)]


async def activity_service(request: Request) -> ActivityService:
    return ActivityService(app_context(request))


Activity = Annotated[ActivityService, Depends(activity_service)]


def _page(changes: list[Change], limit: int) -> JSONResponse:
    next_cursor = encode_cursor(changes[-1].id) if len(changes) == limit else None
    return ok([ChangeOut.of(c) for c in changes], meta={"limit": limit, "nextCursor": next_cursor})


def _query(limit: int, cursor: str | None) -> ChangeQuery:
    return ChangeQuery(limit=limit, before_id=decode_cursor(cursor) if cursor else None)


@router.get("/events/{event_id}/activity", response_model=Envelope[list[ChangeOut]])
async def event_activity(
    event_id: str,
    principal: CurrentPrincipal,
    activity: Activity,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JSONResponse:
    """The event's changes and its bookings' and orders', newest first (organizer, admin)."""
    return _page(await activity.of_event(principal, event_id, _query(limit, cursor)), limit)


@router.get("/bookings/{booking_id}/activity", response_model=Envelope[list[ChangeOut]])
async def booking_activity(
    booking_id: str,
    principal: CurrentPrincipal,
    activity: Activity,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JSONResponse:
    """The booking's changes, newest first (its owner, admin)."""
    return _page(await activity.of_booking(principal, booking_id, _query(limit, cursor)), limit)


@router.get("/activity", response_model=Envelope[list[ChangeOut]])
async def all_activity(
    _: Admin,
    activity: Activity,
    type: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z]+\.[a-z_]+$")] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    starts_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    starts_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JSONResponse:
    """Every change, newest first, filtered by type, actor id and time (admins)."""
    query = ChangeQuery(
        type=type,
        actor_id=actor,
        occurred_from=starts_from,
        occurred_to=starts_to,
        limit=limit,
        before_id=decode_cursor(cursor) if cursor else None,
    )
    return _page(await activity.everything(query), limit)
