"""The original TicketBoss contract: plain JSON, `{"error": "…"}` on failure."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.errors import AppError
from core.inputs import StrictCount, has_control, integral
from core.jsonbody import InvalidJson, parse_json
from modules.bookings.schemas import MAX_QUANTITY

SEATS_MESSAGE = f"seats must be between 1 and {MAX_QUANTITY}"


class ReservationInvalid(AppError):
    status_code, code = 400, "VALIDATION_ERROR"


class ReservationIn(BaseModel):
    partner_id: str
    seats: int

    @classmethod
    def parse(cls, body: bytes) -> ReservationIn:
        """Validate by hand so each failure gets the contract's exact 400 message."""
        try:
            raw = parse_json(body or b"null")
        except InvalidJson:
            raise ReservationInvalid("request body must be valid JSON") from None
        if not isinstance(raw, dict):
            raise ReservationInvalid("request body must be a JSON object")
        partner_id = raw.get("partnerId")
        if partner_id is None or partner_id == "":
            raise ReservationInvalid("partnerId is required")
        if not isinstance(partner_id, str) or len(partner_id) > 50:
            raise ReservationInvalid("partnerId must be a string of at most 50 characters")
        if has_control(partner_id):
            raise ReservationInvalid("partnerId must not contain control characters")
        seats = integral(raw.get("seats"))
        if seats is None:
            raise ReservationInvalid("seats is required")
        if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= MAX_QUANTITY:
            raise ReservationInvalid(SEATS_MESSAGE)
        return cls(partner_id=partner_id, seats=seats)


class ReservationRequest(BaseModel):
    """The body of POST /reservations, for the OpenAPI document (`ReservationIn.parse` checks it)."""

    partnerId: str = Field(
        min_length=1,
        max_length=50,
        description="The partner's own id (with a partner token: that partner's id)",
    )
    seats: StrictCount = Field(ge=1, le=MAX_QUANTITY)


class ReservationOut(BaseModel):
    reservationId: str
    seats: int
    status: str


class ReservationListItem(BaseModel):
    reservationId: str
    partnerId: str | None
    seats: int
    status: str
    createdAt: str


class EventSummary(BaseModel):
    eventId: str
    name: str
    totalSeats: int
    availableSeats: int
    reservationCount: int
    version: int
