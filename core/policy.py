"""The sale rules in one home, and the errors they refuse with.

Services ask here whether an event is on sale, who sees or cancels a booking or order, how a
storage refusal reads to a client and which status a hold shows; each module keeps only what
its own HTTP surface adds (the tiered contract's 422, the partner contract's wording).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Header

from core.errors import AppError, Conflict, Forbidden, InvalidToken, NotFound
from core.queue import QueueUnavailable, WaitingRoom, ms
from core.security import Principal, TokenService
from core.storage.errors import (
    BuyerLimit,
    ClaimReason,
    ClaimRefused,
    ItemsShort,
    NoSuchTier,
    NotOnSale,
    Refused,
    SeatsAvailable,
    SoldOut,
    WaitlistClosed,
)
from core.storage.records import BookingStatus, Event, User, hold_active


class EventNotFound(NotFound):
    code, message = "EVENT_NOT_FOUND", "Event not found"


class EventNotBookable(Conflict):
    code, message = "EVENT_NOT_BOOKABLE", "This event is not on sale"


STARTED_CONFIRM = "The event has started; holds can no longer be confirmed"


class EventStarted(Conflict):
    code, message = "EVENT_STARTED", "The event has started; only its organizer can cancel now"


class InsufficientTickets(Conflict):
    """Too few seats left. The contracts answer it in their own words (and the tiered one
    with 422): they raise this class with their message and status, never a code of their own."""

    code, message = "INSUFFICIENT_TICKETS", "Not enough tickets left in this tier"

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int = 409,
        errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, errors=errors, extra=extra)
        self.status_code = status_code


class PerUserLimitExceeded(Conflict):
    code, message = "PER_USER_LIMIT_EXCEEDED", "This would exceed the event's limit per customer"


class HoldLimitExceeded(Conflict):
    code, message = (
        "HOLD_LIMIT_EXCEEDED",
        "You already hold the most unconfirmed seats allowed for this event; confirm or cancel",
    )


class TierNotFound(NotFound):
    code, message = "TIER_NOT_FOUND", "The event has no such ticket tier"


class AdmissionRequired(Forbidden):
    code, message = (
        "ADMISSION_REQUIRED",
        "This event sells through its waiting room: join it and send your admission token "
        "as the Admission-Token header",
    )


class QueueUnavailableError(AppError):
    status_code, code, message = (
        503,
        "QUEUE_UNAVAILABLE",
        "The waiting room cannot be reached; retry shortly",
    )

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


AdmissionToken = Annotated[
    str | None,
    Header(
        alias="Admission-Token",
        max_length=4096,
        description="While the event's waiting room is on, a buyer's admissionToken "
        "(GET /events/{id}/queue/me); without a valid one: 403 ADMISSION_REQUIRED",
    ),
]


def room_open(event: Event) -> bool:
    """Whether an event's waiting room takes joiners and admits: it is published (and not
    deleted). What the cache mirrors, so every mirror must say it the same way."""
    return event.status == "published" and event.deleted_at is None


def needs_admission(principal: Principal, event: Event) -> bool:
    """While an event's waiting room is on, a buyer needs an admission to buy; partners
    (who sell their own allocation), organizers and admins do not."""
    return bool(event.queue and event.queue.get("enabled")) and principal.role == "user"


async def require_admission(
    principal: Principal,
    event: Event,
    token: str | None,
    tokens: TokenService,
    room: WaitingRoom,
    now: datetime,
) -> None:
    """A protected sale goes ahead only with an admission token of this account, for this
    event, not yet past its `admittedUntil`, and matching the admission the waiting room
    holds. If the room cannot be asked, the sale fails closed (503), never open."""
    if not needs_admission(principal, event):
        return
    if not token:
        raise AdmissionRequired()
    try:
        account, event_id, until = tokens.admission(token)
    except InvalidToken:
        raise AdmissionRequired("The admission token is not valid") from None
    if account != principal.id or event_id != event.id:
        raise AdmissionRequired("The admission token is for another account or event")
    if until <= ms(now):
        raise AdmissionRequired("The admission has ended (admittedUntil passed)")
    try:
        held = await room.admitted_until(event.id, principal.id)
    except QueueUnavailable:
        raise QueueUnavailableError() from None
    if held != until:
        raise AdmissionRequired("The admission token is not the one the waiting room issued")


class EmailNotVerified(Forbidden):
    code, message = (
        "EMAIL_NOT_VERIFIED",
        "Verify your email address first (POST /api/v1/auth/verify-email with the mailed code)",
    )


def needs_verified_email(principal: Principal, required: bool) -> bool:
    """Whether a purchase by `principal` waits for its account's verified address
    (REQUIRE_VERIFIED_EMAIL): partners sell for customers they vouch for, and have no address."""
    return required and not principal.is_partner


def verified_buyer(user: User | None) -> None:
    """Buying needs a verified address (when `needs_verified_email`)."""
    if user is None or user.email_verified_at is None:
        raise EmailNotVerified()


class SeatsAvailableError(Conflict):
    code, message = "SEATS_AVAILABLE", "This tier has seats: book them instead of waiting"


class WaitlistClosedError(Conflict):
    code, message = "WAITLIST_CLOSED", "This tier's waiting list is closed"


class AccessCodeInvalid(AppError):
    status_code, code, message = 422, "ACCESS_CODE_INVALID", "No such access code for this event"


class AccessCodeNotUsable(Conflict):
    code = "ACCESS_CODE_NOT_USABLE"


class WaitlistEntryNotFound(NotFound):
    code, message = "WAITLIST_ENTRY_NOT_FOUND", "No such waiting-list entry for this tier"


class OfferNotUsable(Conflict):
    code = "WAITLIST_OFFER_NOT_USABLE"


_CLAIM_MESSAGES: dict[ClaimReason, str] = {
    "code_disabled": "This access code has been disabled",
    "code_expired": "This access code has expired",
    "code_not_yet_valid": "This access code is not valid yet",
    "code_used_up": "This access code has no uses left",
    "code_other_tier": "This access code does not unlock this tier",
    "entry_not_offered": "This waiting-list entry has no offer yet",
    "offer_expired": "This waiting-list offer has expired",
    "offer_used": "This waiting-list offer has been used",
    "offer_quantity": "Book exactly the seats of the offer",
}


def claim_error(refused: ClaimRefused) -> AppError:
    """The API error for a code or an offer that allowed no booking: 422 for a code the
    event does not have, 404 for an entry that is not the caller's, else 409 with `reason`."""
    reason = refused.reason
    if reason == "code_unknown":
        return AccessCodeInvalid(errors=[{"field": "accessCode", "message": "unknown code"}])
    if reason == "entry_unknown":
        return WaitlistEntryNotFound()
    extra: dict[str, Any] = {"reason": reason}
    if reason == "offer_quantity":
        extra["quantity"] = refused.detail
    cls = AccessCodeNotUsable if reason.startswith("code_") else OfferNotUsable
    return cls(_CLAIM_MESSAGES[reason], extra=extra)


def is_admin(principal: Principal | None) -> bool:
    return principal is not None and principal.role == "admin"


def admin_or_owner(principal: Principal | None, owner_id: str) -> bool:
    """Whether `principal` may see or manage what `owner_id` owns."""
    return principal is not None and (principal.role == "admin" or principal.id == owner_id)


def listed_owner(principal: Principal, asked: str | None = None) -> str | None:
    """Whose records a listing shows: an admin's, those of the user `asked` for (None: all);
    anyone else's, only their own."""
    return asked if is_admin(principal) else principal.id


def bookable(event: Event | None, now: datetime) -> Event:
    """The event, if it sells now: published and not yet started (a draft does not exist for
    a buyer). Storage checks the tier's own sale state again in the atomic step."""
    if event is None or event.status == "draft":
        raise EventNotFound()
    if event.status != "published" or event.starts_at <= now:
        raise EventNotBookable()
    return event


def is_staff(principal: Principal, event: Event | None) -> bool:
    """An admin, or the organizer who owns `event`: they may cancel at any time."""
    return principal.role == "admin" or (
        principal.role == "organizer" and event is not None and event.owner_id == principal.id
    )


def buyer_may_cancel(event: Event | None, now: datetime) -> None:
    """A buyer cancels until the event starts."""
    if event is not None and event.starts_at <= now:
        raise EventStarted()


def cancel_scope(
    principal: Principal,
    owner_id: str,
    event: Event | None,
    now: datetime,
    not_found: type[AppError],
) -> str | None:
    """Whose booking or order (owned by `owner_id`, of `event`) `principal` may cancel: None
    for staff (whoever owns it), else the buyer's own id; `not_found` for anyone else."""
    if is_staff(principal, event):
        return None
    if owner_id != principal.id:
        raise not_found()
    buyer_may_cancel(event, now)
    return principal.id


def display_status(
    status: BookingStatus, expires_at: datetime | None, now: datetime
) -> BookingStatus:
    """A hold past its expiry shows as `expired` even before the sweeper has released it."""
    if status == "pending" and not hold_active(status, expires_at, now):
        return "expired"
    return status


def refusal_error(refused: Refused, event: Event, tier: str) -> AppError:
    """The API error for a refused reserve of `tier` (an order's shortage: `order_shortage`)."""
    match refused:
        case NoSuchTier():
            return TierNotFound()
        case NotOnSale():
            return EventNotBookable()
        case BuyerLimit(limit="max_per_user"):
            return PerUserLimitExceeded(extra={"maxPerUser": event.max_per_user})
        case BuyerLimit():
            return HoldLimitExceeded()
        case SoldOut(available=available):
            return InsufficientTickets(
                f"Only {available} tickets left in tier {tier}", extra={"available": available}
            )
        case ClaimRefused():
            return claim_error(refused)
        case SeatsAvailable(available=available):
            return SeatsAvailableError(extra={"available": available})
        case WaitlistClosed():
            return WaitlistClosedError()
    raise AssertionError(refused)


def order_shortage(short: ItemsShort, tiers: list[str]) -> InsufficientTickets:
    """The error for an order some of whose tiers (`tiers`, in the order's item order) lack
    seats: one field error per short item."""
    position = {tier: i for i, tier in enumerate(tiers)}
    return InsufficientTickets(
        "Not enough tickets left in " + ", ".join(tier for tier, _, _ in short.short),
        errors=[
            {
                "field": f"items.{position[tier]}.quantity",
                "message": f"only {available} left in tier {tier}",
            }
            for tier, _, available in short.short
        ],
        extra={
            "tiers": [
                {"tier": tier, "requested": requested, "available": available}
                for tier, requested, available in short.short
            ]
        },
    )
