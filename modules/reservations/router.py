"""Root paths of the original TicketBoss partner API; shapes and messages follow its contract."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from core.deps import Context, client_ip, resolve_principal
from core.errors import AppError
from core.idempotency import idempotent_request
from core.security import Principal
from modules.bookings.service import InsufficientTickets
from modules.reservations.schemas import (
    EventSummary,
    ReservationIn,
    ReservationInvalid,
    ReservationListItem,
    ReservationOut,
)
from modules.reservations.service import ReservationService

router = APIRouter(tags=["reservations (partner contract)"])


async def reservation_service(ctx: Context) -> ReservationService:
    return ReservationService(ctx)


Reservations = Annotated[ReservationService, Depends(reservation_service)]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _caller(request: Request, ctx: Context) -> Principal | JSONResponse | None:
    """The partner behind the bearer token; None in anonymous mode; else a 401/403 answer."""
    try:
        principal = resolve_principal(request, ctx)
    except AppError:
        principal = None
        if not ctx.settings.ticketboss_anonymous_partners:
            return _error(401, "invalid bearer token", {"WWW-Authenticate": "Bearer"})
    if principal is None:
        if ctx.settings.ticketboss_anonymous_partners:
            return None
        return _error(401, "a partner bearer token is required", {"WWW-Authenticate": "Bearer"})
    if not principal.is_partner:
        return _error(403, "only partner tokens may manage reservations")
    return principal


async def _matches(ctx: Context, principal: Principal, partner_id: str) -> bool:
    if partner_id == principal.id:
        return True
    partner = await ctx.storage.partners.get(principal.id)
    return partner is not None and partner_id in (partner.client_id, partner.name)


@router.post("/reservations", status_code=201, response_model=ReservationOut)
async def reserve(request: Request, ctx: Context, reservations: Reservations) -> Response:
    caller = _caller(request, ctx)
    if isinstance(caller, JSONResponse):
        return caller
    raw = await request.body()
    try:
        body = ReservationIn.parse(json.loads(raw or b"null"))
    except ValueError as exc:
        message = (
            str(exc) if isinstance(exc, ReservationInvalid) else "request body must be valid JSON"
        )
        return _error(400, message)
    if caller is not None and not await _matches(ctx, caller, body.partner_id):
        return _error(403, "partnerId does not match the bearer token")
    partner = caller or Principal(body.partner_id, "partner")
    guard = await idempotent_request(
        request,
        ctx.cache,
        partner.id if caller else f"ip:{client_ip(request)}",
        ctx.settings.idempotency_ttl_seconds,
        required=False,
    )

    async def handle() -> Response:
        try:
            booking = await reservations.reserve(partner, body.seats, guard.key, guard.fingerprint)
        except InsufficientTickets:
            return _error(409, "Not enough seats left")
        except AppError as exc:
            return _error(exc.status_code, exc.message)
        out = ReservationOut(
            reservationId=booking.id, seats=booking.quantity, status=booking.status
        )
        return JSONResponse(out.model_dump(), status_code=201)

    return await guard.run(handle)


@router.delete("/reservations/{reservation_id}", status_code=204)
async def cancel(
    reservation_id: str, request: Request, ctx: Context, reservations: Reservations
) -> Response:
    caller = _caller(request, ctx)
    if isinstance(caller, JSONResponse):
        return caller
    try:
        booking = await reservations.cancel(caller, reservation_id)
    except AppError:
        booking = None  # already cancelled (or expired): the contract says 404
    if booking is None:
        return _error(404, "Reservation not found or already cancelled")
    return Response(status_code=204)


@router.get("/reservations", response_model=EventSummary)
async def summary(reservations: Reservations) -> JSONResponse:
    event, available, count = await reservations.summary()
    out = EventSummary(
        eventId=event.id,
        name=event.name,
        totalSeats=sum(t.capacity for t in event.tiers),
        availableSeats=available,
        reservationCount=count,
        version=sum(t.version for t in event.tiers),
    )
    return JSONResponse(out.model_dump())


@router.get("/reservations/list", response_model=list[ReservationListItem])
async def list_reservations(
    reservations: Reservations, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> JSONResponse:
    items = [
        ReservationListItem(
            reservationId=b.id,
            partnerId=b.partner_id,
            seats=b.quantity,
            status=b.status,
            createdAt=b.created_at.isoformat(),
        ).model_dump()
        for b in await reservations.find(limit)
    ]
    return JSONResponse(items)
