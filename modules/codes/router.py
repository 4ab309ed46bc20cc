from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from core.deps import CurrentPrincipal, app_context
from core.routing import ApiRoute
from core.schemas import Envelope, ok
from modules.codes.schemas import CodeCheck, CodeCheckOut, CodeCreate, CodeOut, CodePatchIn
from modules.codes.service import CodeService

router = APIRouter(prefix="/events/{event_id}/codes", tags=["access codes"], route_class=ApiRoute)


async def code_service(request: Request) -> CodeService:
    return CodeService(app_context(request))


Codes = Annotated[CodeService, Depends(code_service)]


@router.post("", status_code=201, response_model=Envelope[CodeOut])
async def create_code(
    event_id: str, body: CodeCreate, principal: CurrentPrincipal, codes: Codes
) -> JSONResponse:
    """A code that unlocks tiers (hidden ones too) within its window for `maxUses` bookings;
    `reserveSeats` holds its seats back from everyone else (409 when the tier lacks them)."""
    return ok(CodeOut.of(await codes.create(principal, event_id, body)), status=201)


@router.get("", response_model=Envelope[list[CodeOut]])
async def list_codes(event_id: str, principal: CurrentPrincipal, codes: Codes) -> JSONResponse:
    """The event's codes with their uses (its organizer, an admin)."""
    return ok([CodeOut.of(c) for c in await codes.find(principal, event_id)])


@router.post("/check", response_model=Envelope[CodeCheckOut])
async def check_code(
    event_id: str, body: CodeCheck, principal: CurrentPrincipal, codes: Codes
) -> JSONResponse:
    """What a code unlocks for a buyer, before booking with it as `accessCode`: its tiers
    (hidden ones too) with the discounted price, or the refusal a booking would get (422
    ACCESS_CODE_INVALID, 409 ACCESS_CODE_NOT_USABLE with `reason`). Uses nothing."""
    return ok(await codes.check(event_id, body.access_code))


@router.patch("/{code_id}", response_model=Envelope[CodeOut])
async def update_code(
    event_id: str, code_id: str, body: CodePatchIn, principal: CurrentPrincipal, codes: Codes
) -> JSONResponse:
    """Edit a code; `enabled: false` disables it (a reserving code's seats go back on sale)."""
    return ok(CodeOut.of(await codes.update(principal, event_id, code_id, body)))


@router.delete("/{code_id}", response_model=Envelope[CodeOut])
async def disable_code(
    event_id: str, code_id: str, principal: CurrentPrincipal, codes: Codes
) -> JSONResponse:
    """Disable a code (it is kept, with its uses)."""
    return ok(CodeOut.of(await codes.disable(principal, event_id, code_id)))
