"""Bookings: the rules around the storage port's atomic reserve / confirm / cancel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from core.deps import AppContext
from core.errors import Conflict, NotFound
from core.idempotency import IdempotencyKeyReused
from core.logging import get_logger
from core.metrics import BOOKINGS
from core.security import Principal
from core.storage.port import BookingExpired, NotPending
from core.storage.records import (
    Booking,
    BookingQuery,
    BookingStatus,
    Drift,
    ReserveRequest,
    utcnow,
)
from modules.events.service import EventNotFound, EventService

log = get_logger(__name__)


class InsufficientTickets(Conflict):
    code, message = "INSUFFICIENT_TICKETS", "Not enough tickets left in this tier"


class EventNotBookable(Conflict):
    code, message = "EVENT_NOT_BOOKABLE", "This event is not on sale"


class PerUserLimitExceeded(Conflict):
    code, message = "PER_USER_LIMIT_EXCEEDED", "This would exceed the event's limit per customer"


class TierNotFound(NotFound):
    code, message = "TIER_NOT_FOUND", "The event has no such ticket tier"


class BookingNotFound(NotFound):
    code, message = "BOOKING_NOT_FOUND", "Booking not found"


class BookingExpiredError(Conflict):
    code, message = "BOOKING_EXPIRED", "The hold expired; its seats were released"


class BookingNotPending(Conflict):
    code = "BOOKING_NOT_PENDING"


class BookingNotCancellable(Conflict):
    code = "BOOKING_NOT_CANCELLABLE"


@dataclass(frozen=True, slots=True)
class BookingRequest:
    event_id: str
    tier: str
    quantity: int
    hold: bool = False
    external_ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Booked:
    booking: Booking
    replayed: bool


class BookingService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.events = EventService(ctx)
        self.hold_ttl = timedelta(seconds=ctx.settings.hold_ttl_seconds)

    async def book(self, principal: Principal, request: BookingRequest) -> Booked:
        now = utcnow()
        event = await self.events.for_booking(request.event_id)
        if event is None or event.status == "draft":
            raise EventNotFound()
        if event.status != "published" or event.starts_at <= now:
            raise EventNotBookable()
        if event.max_per_user is not None and request.quantity > event.max_per_user:
            raise PerUserLimitExceeded(extra={"maxPerUser": event.max_per_user})
        result = await self.storage.bookings.reserve(
            ReserveRequest(
                event_id=event.id,
                tier=request.tier,
                quantity=request.quantity,
                owner_id=principal.id,
                now=now,
                hold_until=now + self.hold_ttl if request.hold else None,
                max_per_user=event.max_per_user,
                partner_id=principal.id if principal.is_partner else None,
                external_ref=request.external_ref,
                idempotency_key=request.idempotency_key,
                request_hash=request.request_hash,
            )
        )
        BOOKINGS.labels(result.outcome).inc()
        if result.booking is not None:
            if result.outcome == "created":
                await self.events.invalidate(event.id)
            return self._checked(result.booking, request, replayed=result.outcome == "existing")
        if request.idempotency_key:  # a retry after the sale closed still gets its booking back
            existing = await self.storage.bookings.get_by_key(principal.id, request.idempotency_key)
            if existing is not None:
                return self._checked(existing, request, replayed=True)
        match result.outcome:
            case "no_tier":
                raise TierNotFound()
            case "not_on_sale":
                raise EventNotBookable()
            case "per_user_limit":
                raise PerUserLimitExceeded(extra={"maxPerUser": event.max_per_user})
            case _:
                raise InsufficientTickets(
                    f"Only {result.available} tickets left in tier {request.tier}",
                    extra={"available": result.available},
                )

    @staticmethod
    def _checked(booking: Booking, request: BookingRequest, *, replayed: bool) -> Booked:
        if replayed and booking.request_hash != request.request_hash:
            raise IdempotencyKeyReused()
        return Booked(booking, replayed)

    async def confirm(self, principal: Principal, booking_id: str) -> Booking:
        try:
            booking = await self.storage.bookings.confirm(booking_id, principal.id, utcnow())
        except BookingExpired:
            raise BookingExpiredError() from None
        except NotPending as exc:
            raise BookingNotPending(f"The booking is {exc.current}, not pending") from None
        if booking is None:
            raise BookingNotFound()
        await self.events.invalidate(booking.event_id)
        return booking

    async def cancel(self, principal: Principal, booking_id: str) -> Booking:
        """Cancel a booking of the caller's (any booking, for an admin)."""
        owner = None if principal.role == "admin" else principal.id
        return await self.cancel_owned(owner, booking_id)

    async def cancel_owned(self, owner_id: str | None, booking_id: str) -> Booking:
        """Cancel `booking_id` if `owner_id` owns it (None: whoever does)."""
        owner = owner_id
        try:
            booking = await self.storage.bookings.cancel(booking_id, owner, utcnow())
        except NotPending as exc:
            raise BookingNotCancellable(
                f"A booking that is {exc.current} cannot be cancelled"
            ) from None
        if booking is None:
            raise BookingNotFound()
        await self.events.invalidate(booking.event_id)
        return booking

    async def release_expired(self) -> int:
        """Give every expired hold's seats back (the sweeper and `ticketboss expire-holds`)."""
        return await self.storage.bookings.release_expired(utcnow())

    async def reconcile(self, *, fix: bool) -> list[Drift]:
        """Recount every seat counter from bookings; with `fix`, repair the drift found."""
        return await self.storage.bookings.recount(utcnow(), fix=fix)

    async def get(self, principal: Principal, booking_id: str) -> Booking:
        booking = await self.storage.bookings.get(booking_id)
        if booking is None or (principal.role != "admin" and booking.owner_id != principal.id):
            raise BookingNotFound()
        return booking

    async def find(
        self,
        principal: Principal,
        *,
        status: BookingStatus | None,
        event_id: str | None,
        user_id: str | None,
        limit: int,
        before_id: str | None,
    ) -> list[Booking]:
        owner = user_id if principal.role == "admin" else principal.id
        query = BookingQuery(
            owner_id=owner, event_id=event_id, status=status, before_id=before_id, limit=limit
        )
        return await self.storage.bookings.find(query)


async def sweep_expired_holds(ctx: AppContext) -> None:
    """Background loop: release holds past their expiry so their seats return to sale."""
    bookings = BookingService(ctx)
    while True:
        await asyncio.sleep(ctx.settings.expire_sweep_seconds)
        try:
            released = await bookings.release_expired()
            if released:
                log.info("holds_expired", count=released)
        except Exception as exc:  # the loop must outlive a transient storage failure
            log.warning("expire_sweep_failed", error=type(exc).__name__)
