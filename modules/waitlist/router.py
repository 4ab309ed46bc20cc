from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from core.deps import CurrentPrincipal, app_context
from core.routing import ApiRoute
from core.schemas import Envelope, ok
from modules.events.schemas import TierCode
from modules.waitlist.schemas import WaitlistEntryOut, WaitlistJoin
from modules.waitlist.service import WaitlistService

router = APIRouter(tags=["waitlist"], route_class=ApiRoute)


async def waitlist_service(request: Request) -> WaitlistService:
    return WaitlistService(app_context(request))


Waitlist = Annotated[WaitlistService, Depends(waitlist_service)]


@router.post(
    "/events/{event_id}/waitlist", status_code=201, response_model=Envelope[WaitlistEntryOut]
)
async def join_waitlist(
    event_id: str, body: WaitlistJoin, principal: CurrentPrincipal, waitlist: Waitlist
) -> JSONResponse:
    """Wait for seats of a tier that lacks them (409 SEATS_AVAILABLE while it has them).
    Freed seats are offered in list order and held for `WAITLIST_OFFER_SECONDS`: book them
    with `waitlistEntryId`."""
    entry = await waitlist.join(principal, event_id, body.tier, body.quantity)
    return ok(entry, status=201)


@router.get("/events/{event_id}/waitlist", response_model=Envelope[list[WaitlistEntryOut]])
async def event_waitlist(
    event_id: str,
    principal: CurrentPrincipal,
    waitlist: Waitlist,
    tier: Annotated[TierCode | None, Query()] = None,
) -> JSONResponse:
    """The event's live entries, in list order (its organizer, an admin)."""
    return ok(await waitlist.of_event(principal, event_id, tier))


@router.get("/waitlist", response_model=Envelope[list[WaitlistEntryOut]])
async def my_waitlist(principal: CurrentPrincipal, waitlist: Waitlist) -> JSONResponse:
    """Your entries, with their offers."""
    return ok(await waitlist.mine(principal))


@router.delete("/waitlist/{entry_id}", response_model=Envelope[WaitlistEntryOut])
async def leave_waitlist(
    entry_id: str, principal: CurrentPrincipal, waitlist: Waitlist
) -> JSONResponse:
    """Leave the list; an offer you hold passes to the next entry."""
    return ok(await waitlist.leave(principal, entry_id))
