"""Root paths of the tiered ticket-booking contract (`/api/tickets`): plain JSON, errors as
`{"code", "message", "errors": [{"path", "message"}]}`. Each path also answers with a trailing
slash, directly (no redirect: many clients do not repeat a POST after one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from core import clock
from core.deps import app_context, resolve_principal
from core.errors import AppError, Unauthorized
from core.idempotency import idempotent
from core.openapi import authenticates, request_body
from core.policy import display_status
from core.routing import ApiRoute, Guard, with_and_without_slash
from core.security import Principal
from modules.tickets.schemas import (
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    BookOut,
    BookRequest,
    CancelOut,
    CancelRequest,
    TicketBookingOut,
    TicketOut,
    TicketsError,
    checked_user_id,
    parse_book,
    parse_cancel,
)
from modules.tickets.service import TicketBookingNotFound, TicketService

MAX_BOOKING_ID_LENGTH = 64
DESCRIPTIONS = {
    400: "VALIDATION_ERROR: a missing or empty userId, a quantity outside 1-10 or not an "
    "integer, a malformed body; or a malformed Idempotency-Key",
    401: "No bearer token (and anonymous mode is off), or an invalid or expired one",
    403: "USER_MISMATCH: a user token whose id is not the userId",
    404: "TICKET_NOT_FOUND (unknown tier) or BOOKING_NOT_FOUND (not this userId's booking)",
    409: "The booking or show does not allow this now, or the Idempotency-Key is in use",
    422: "INSUFFICIENT_TICKETS (with availableQuantity), or an Idempotency-Key reused for "
    "another request",
    429: "Too many requests; retry after `Retry-After` seconds",
}

# Read by hand (like the bodies), so that a bad one is the contract's 400, never a 422.
USER_ID_PARAMETER = {
    "name": "userId",
    "in": "query",
    "required": True,
    "description": "Whose bookings: as in POST /api/tickets/book",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_USER_ID_LENGTH,
        "pattern": USER_ID_PATTERN,
    },
}


class TicketsRoute(ApiRoute):
    """Errors in the contract's shape. Invalid input is its 400 VALIDATION_ERROR, whichever
    layer found it (an unparseable body included)."""

    error_model = TicketsError

    def render_error(self, exc: AppError) -> Response:
        status, code, message = exc.status_code, exc.code, exc.message
        errors = [
            {"path": e.get("path") or e.get("field") or "body", "message": e["message"]}
            for e in exc.errors
        ]
        if code == "INVALID_JSON" or (code == "VALIDATION_ERROR" and status == 422):
            status, code, message = 400, "VALIDATION_ERROR", "The request is not valid"
            errors = errors or [{"path": "body", "message": exc.message}]
        body: dict[str, Any] = {"code": code, "message": message, "errors": errors}
        body.update(exc.extra)
        return JSONResponse(body, status_code=status, headers=exc.headers)


router = APIRouter(tags=["tickets (tiered contract)"], route_class=TicketsRoute)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": TicketsError, "description": DESCRIPTIONS[s]} for s in statuses}


def route(method: str, path: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    return with_and_without_slash(router, method, path, **options)


async def ticket_service(request: Request) -> TicketService:
    return TicketService(app_context(request))


@authenticates("required")
async def tickets_caller(request: Request) -> Principal | None:
    """The caller behind the bearer token (user or partner); None in anonymous mode when no
    token was sent. A token that is sent must be valid, in every mode."""
    ctx = app_context(request)
    principal = await resolve_principal(request, ctx)
    if principal is None and not ctx.settings.ticketboss_anonymous_tiers:
        raise Unauthorized("Send a user or partner bearer token")
    return principal


Tickets = Annotated[TicketService, Depends(ticket_service)]
Caller = Annotated[Principal | None, Depends(tickets_caller)]


@route(
    "GET",
    "/api/tickets",
    response_model=list[TicketOut],
    responses=errors(429),
    summary="Every tier of the show, with its price and the tickets left",
)
async def list_tickets(tickets: Tickets) -> JSONResponse:
    event, available = await tickets.tickets()
    items = [
        TicketOut(
            tier=tier.code,
            price=tier.price_cents / 100,
            priceCents=tier.price_cents,
            currency="USD",
            totalQuantity=tier.capacity,
            availableQuantity=available.get(tier.code, tier.capacity),
        ).model_dump()
        for tier in event.tiers
    ]
    return JSONResponse(items)


@route(
    "POST",
    "/api/tickets/book",
    status_code=201,
    response_model=BookOut,
    responses=errors(400, 401, 403, 404, 409, 422, 429),
    openapi_extra={**idempotent(), "requestBody": request_body(BookRequest)},
    summary="Book tickets of one tier",
)
async def book(request: Request, caller: Caller, tickets: Tickets, guard: Guard) -> Response:
    body = parse_book(await request.body())
    buyer = tickets.buyer(caller, body.user_id)
    booking, remaining = await tickets.book(buyer, body, guard.key, guard.fingerprint)
    out = BookOut(
        bookingId=booking.id,
        tier=booking.tier,
        bookedQuantity=booking.quantity,
        remainingQuantity=remaining,
        totalPriceCents=booking.total_cents,
    )
    return JSONResponse(out.model_dump(), status_code=201)


@route(
    "GET",
    "/api/tickets/bookings",
    response_model=list[TicketBookingOut],
    responses=errors(400, 401, 403, 429),
    openapi_extra={"parameters": [USER_ID_PARAMETER]},
    summary="A user's bookings of the show, newest first (at most 100)",
)
async def list_bookings(request: Request, caller: Caller, tickets: Tickets) -> JSONResponse:
    buyer = tickets.buyer(caller, checked_user_id(request.query_params.get("userId")))
    now = clock.now()
    items = [
        TicketBookingOut(
            bookingId=b.id,
            userId=buyer.user_id,
            tier=b.tier,
            quantity=b.quantity,
            status=display_status(b.status, b.expires_at, now),
            totalPriceCents=b.total_cents,
            createdAt=b.created_at.isoformat(),
        ).model_dump()
        for b in await tickets.find(buyer)
    ]
    return JSONResponse(items)


@route(
    "POST",
    "/api/tickets/bookings/{booking_id}/cancel",
    response_model=CancelOut,
    responses=errors(400, 401, 403, 404, 409, 422, 429),
    openapi_extra={**idempotent(), "requestBody": request_body(CancelRequest)},
    summary="Cancel one of the user's bookings; its seats return to sale",
)
async def cancel(
    booking_id: str, request: Request, caller: Caller, tickets: Tickets
) -> JSONResponse:
    user_id = parse_cancel(await request.body())
    buyer = tickets.buyer(caller, user_id)
    if len(booking_id) > MAX_BOOKING_ID_LENGTH:
        raise TicketBookingNotFound()
    booking, remaining = await tickets.cancel(buyer, booking_id)
    out = CancelOut(
        bookingId=booking.id,
        tier=booking.tier,
        status=booking.status,
        releasedQuantity=booking.quantity,
        remainingQuantity=remaining,
    )
    return JSONResponse(out.model_dump())
