"""Root paths of the original TicketBoss partner API; shapes and messages follow its contract."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from core.deps import app_context, resolve_principal
from core.errors import AppError, Forbidden, Unauthorized
from core.idempotency import idempotent
from core.openapi import authenticates, request_body
from core.routing import ApiRoute, Guard, with_and_without_slash
from core.security import Principal
from modules.reservations.schemas import (
    EventSummary,
    ReservationIn,
    ReservationListItem,
    ReservationOut,
    ReservationRequest,
)
from modules.reservations.service import ReservationService


class ContractError(BaseModel):
    error: str


class ContractRoute(ApiRoute):
    """Errors in the contract's own shape: `{"error": "…"}` with the status."""

    error_model = ContractError

    def render_error(self, exc: AppError) -> Response:
        details = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors if "field" in e)
        message = f"{exc.message} ({details})" if details else exc.message
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


router = APIRouter(tags=["reservations (partner contract)"], route_class=ContractRoute)


async def reservation_service(request: Request) -> ReservationService:
    return ReservationService(app_context(request))


@authenticates("required")
async def partner_caller(request: Request) -> Principal | None:
    """The partner behind the bearer token; None in anonymous mode (no token sent)."""
    ctx = app_context(request)
    anonymous = ctx.settings.ticketboss_anonymous_partners
    try:
        principal = await resolve_principal(request, ctx)
    except AppError:
        if anonymous:
            return None
        raise Unauthorized("invalid bearer token") from None
    if principal is None:
        if anonymous:
            return None
        raise Unauthorized("a partner bearer token is required")
    if not principal.is_partner:
        raise Forbidden("only partner tokens may manage reservations")
    return principal


Reservations = Annotated[ReservationService, Depends(reservation_service)]
Partner = Annotated[Principal | None, Depends(partner_caller)]


@with_and_without_slash(
    router,
    "POST",
    "/reservations",
    status_code=201,
    response_model=ReservationOut,
    openapi_extra={**idempotent(), "requestBody": request_body(ReservationRequest)},
)
async def reserve(
    request: Request, partner: Partner, reservations: Reservations, guard: Guard
) -> Response:
    body = ReservationIn.parse(await request.body())
    booking = await reservations.reserve(partner, body, guard.key, guard.fingerprint)
    out = ReservationOut(reservationId=booking.id, seats=booking.quantity, status=booking.status)
    return JSONResponse(out.model_dump(), status_code=201)


@with_and_without_slash(router, "DELETE", "/reservations/{reservation_id}", status_code=204)
async def cancel(reservation_id: str, partner: Partner, reservations: Reservations) -> Response:
    await reservations.cancel(partner, reservation_id)
    return Response(status_code=204)


@with_and_without_slash(router, "GET", "/reservations", response_model=EventSummary)
async def summary(_: Partner, reservations: Reservations) -> JSONResponse:
    """The whole event's counts: availability is public on the events API anyway, and the
    contract's shape (totalSeats − availableSeats, reservationCount) is event-wide."""
    return JSONResponse((await reservations.summary()).model_dump())


@with_and_without_slash(
    router, "GET", "/reservations/list", response_model=list[ReservationListItem]
)
async def list_reservations(
    partner: Partner,
    reservations: Reservations,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """The caller's own reservations, newest first (everyone's in anonymous mode)."""
    items = [
        ReservationListItem(
            reservationId=b.id,
            partnerId=b.partner_id,
            seats=b.quantity,
            status=b.status,
            createdAt=b.created_at.isoformat(),
        ).model_dump()
        for b in await reservations.find(partner, limit)
    ]
    return JSONResponse(items)
