"""The tiered ticket-booking contract's JSON: plain objects (no envelope), camelCase, and errors
as `{"code", "message", "errors": [{"path", "message"}]}`.

Request bodies are checked by hand, strictly (`true`, `"2"` and `2.5` are not quantities; `2.0`
is, as JSON Schema's integer), so
that every broken rule is named with its path in one 400; the pydantic models below describe
the same rules for the OpenAPI document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from core.errors import AppError
from core.inputs import StrictCount, has_control, integral
from core.jsonbody import InvalidJson, parse_json
from modules.bookings.schemas import MAX_QUANTITY

TIERS = ("VIP", "FRONT_ROW", "GA")
TIER_NAMES = {"VIP": "VIP", "FRONT_ROW": "Front Row", "GA": "General Admission"}
MAX_USER_ID_LENGTH = 50
"""Short enough that an anonymous buyer's owner id (`anon:<userId>`) fits the owner column."""
MAX_TIER_LENGTH = 32
USER_ID_MESSAGE = (
    f"userId is required: a non-empty string of at most {MAX_USER_ID_LENGTH} characters"
)
QUANTITY_MESSAGE = f"quantity must be an integer between 1 and {MAX_QUANTITY}"
TIER_MESSAGE = f"tier is required: one of {', '.join(TIERS)}"
LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]+$"
"""One line of text: no control character (not even tab or a line break)."""
USER_ID_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*\S[^\u0000-\u001f\u007f-\u009f]*$"
"""A line that is not only white space."""
_LINE = re.compile(LINE_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)


class TicketsInvalid(AppError):
    status_code, code, message = 400, "VALIDATION_ERROR", "The request is not valid"


@dataclass(frozen=True, slots=True)
class BookIn:
    user_id: str
    tier: str
    quantity: int


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (400 for anything else), through the guarded parser."""
    try:
        raw = parse_json(body or b"null")
    except InvalidJson:
        raise _invalid("body", "the request body must be valid JSON") from None
    if not isinstance(raw, dict):
        raise _invalid("body", "the request body must be a JSON object")
    return raw


def parse_book(body: bytes) -> BookIn:
    raw = parse_object(body)
    errors = []
    user_id = raw.get("userId")
    if not valid_user_id(user_id):
        errors.append({"field": "userId", "message": USER_ID_MESSAGE})
    tier = raw.get("tier")
    if (
        not isinstance(tier, str)
        or not 1 <= len(tier) <= MAX_TIER_LENGTH
        or not _LINE.fullmatch(tier)
    ):
        errors.append({"field": "tier", "message": TIER_MESSAGE})
    quantity = integral(raw.get("quantity"))
    if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
        errors.append({"field": "quantity", "message": QUANTITY_MESSAGE})
    if errors:
        raise TicketsInvalid(errors=errors)
    assert isinstance(user_id, str) and isinstance(tier, str) and isinstance(quantity, int)
    return BookIn(user_id, tier, quantity)


def parse_cancel(body: bytes) -> str:
    """The `userId` of a cancellation."""
    user_id = parse_object(body).get("userId")
    return checked_user_id(user_id)


def checked_user_id(value: object) -> str:
    if not valid_user_id(value):
        raise _invalid("userId", USER_ID_MESSAGE)
    assert isinstance(value, str)
    return value


def valid_user_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= MAX_USER_ID_LENGTH
        and _USER_ID.fullmatch(value) is not None
        and not has_control(value)
    )


def _invalid(path: str, message: str) -> TicketsInvalid:
    return TicketsInvalid(errors=[{"field": path, "message": message}])


# The shapes, for the OpenAPI document and for building answers.


class BookRequest(BaseModel):
    userId: str = Field(
        min_length=1,
        max_length=MAX_USER_ID_LENGTH,
        pattern=USER_ID_PATTERN,
        description="With a user token: the caller's own user id. With a partner token: the "
        "partner's reference for its customer. Anonymous mode: any buyer name.",
    )
    tier: str = Field(
        min_length=1,
        max_length=MAX_TIER_LENGTH,
        pattern=LINE_PATTERN,
        description=f"One of {', '.join(TIERS)}; another tier is a 404 TICKET_NOT_FOUND",
    )
    quantity: StrictCount = Field(ge=1, le=MAX_QUANTITY)


class CancelRequest(BaseModel):
    userId: str = Field(min_length=1, max_length=MAX_USER_ID_LENGTH, pattern=USER_ID_PATTERN)


class TicketOut(BaseModel):
    tier: str
    price: float = Field(description="USD, e.g. 100.0 (the same amount as priceCents)")
    priceCents: int
    currency: str
    totalQuantity: int
    availableQuantity: int


class BookOut(BaseModel):
    bookingId: str
    tier: str
    bookedQuantity: int
    remainingQuantity: int = Field(description="Seats left in the tier after this booking")
    totalPriceCents: int


class TicketBookingOut(BaseModel):
    bookingId: str
    userId: str
    tier: str
    quantity: int
    status: str = Field(
        description="confirmed or cancelled (pending or expired for holds made through /api/v1)"
    )
    totalPriceCents: int
    createdAt: str


class CancelOut(BaseModel):
    bookingId: str
    tier: str
    status: str
    releasedQuantity: int
    remainingQuantity: int = Field(description="Seats left in the tier after the release")


class ErrorItem(BaseModel):
    path: str = Field(description="The offending field (`userId`, `tier`, `quantity`) or `body`")
    message: str


class TicketsError(BaseModel):
    """Every error of /api/tickets. INSUFFICIENT_TICKETS adds `availableQuantity`."""

    code: str = Field(description="Stable, UPPER_SNAKE: clients branch on it")
    message: str
    errors: list[ErrorItem]
