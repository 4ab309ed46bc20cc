from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from core import clock
from core.deps import CurrentPrincipal, app_context
from core.idempotency import REPLAYED_HEADER, idempotent
from core.pagination import Cursor, decode_cursor, encode_cursor
from core.policy import AdmissionToken
from core.routing import ApiRoute, Guard
from core.schemas import Envelope, ok
from core.storage.records import Booking, BookingStatus
from modules.bookings.schemas import BookingCreate, BookingOut
from modules.bookings.service import BookingRequest, BookingService

router = APIRouter(prefix="/bookings", tags=["bookings"], route_class=ApiRoute)


async def booking_service(request: Request) -> BookingService:
    return BookingService(app_context(request))


Bookings = Annotated[BookingService, Depends(booking_service)]


def _booking_response(
    booking: Booking, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return ok(BookingOut.of(booking, clock.now()), status=status, headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=Envelope[BookingOut],
    openapi_extra=idempotent(required=True),
)
async def create_booking(
    body: BookingCreate,
    principal: CurrentPrincipal,
    bookings: Bookings,
    guard: Guard,
    admission_token: AdmissionToken = None,
) -> Response:
    """Book seats; `hold: true` makes a pending hold to confirm before it expires."""
    booked = await bookings.book(
        principal,
        BookingRequest(
            event_id=body.event_id,
            tier=body.tier,
            quantity=body.quantity,
            hold=body.hold,
            external_ref=body.external_ref,
            idempotency_key=guard.key,
            request_hash=guard.fingerprint,
            admission_token=admission_token,
            waitlist_entry_id=body.waitlist_entry_id,
            access_code=body.access_code,
        ),
    )
    headers = {"Location": f"/api/v1/bookings/{booked.booking.id}"}
    if booked.replayed:
        headers[REPLAYED_HEADER] = "true"
    return _booking_response(booked.booking, status=201, headers=headers)


@router.post(
    "/{booking_id}/confirm", response_model=Envelope[BookingOut], openapi_extra=idempotent()
)
async def confirm_booking(
    booking_id: str, principal: CurrentPrincipal, bookings: Bookings
) -> Response:
    return _booking_response(await bookings.confirm(principal, booking_id))


@router.patch(
    "/{booking_id}/cancel", response_model=Envelope[BookingOut], openapi_extra=idempotent()
)
async def cancel_booking(
    booking_id: str, principal: CurrentPrincipal, bookings: Bookings
) -> Response:
    return _booking_response(await bookings.cancel(principal, booking_id))


@router.get("", response_model=Envelope[list[BookingOut]])
async def list_bookings(
    principal: CurrentPrincipal,
    bookings: Bookings,
    status: BookingStatus | None = None,
    event_id: Annotated[str | None, Query(alias="eventId", max_length=64)] = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> JSONResponse:
    found = await bookings.find(
        principal,
        status=status,
        event_id=event_id,
        user_id=user_id,
        limit=limit,
        before_id=decode_cursor(cursor) if cursor else None,
    )
    next_cursor = encode_cursor(found[-1].id) if len(found) == limit else None
    now = clock.now()
    return ok(
        [BookingOut.of(b, now) for b in found], meta={"limit": limit, "nextCursor": next_cursor}
    )


@router.get("/{booking_id}", response_model=Envelope[BookingOut])
async def get_booking(
    booking_id: str, principal: CurrentPrincipal, bookings: Bookings
) -> JSONResponse:
    return _booking_response(await bookings.get(principal, booking_id))
