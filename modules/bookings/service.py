"""Bookings: the rules around the storage port's atomic reserve / confirm / cancel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from core import clock, policy
from core.deps import AppContext
from core.errors import Conflict, NotFound
from core.idempotency import IdempotencyKeyReused
from core.logging import get_logger
from core.metrics import BOOKINGS
from core.policy import STARTED_CONFIRM, EventNotBookable
from core.security import Principal
from core.storage.errors import (
    BookingExpired,
    BuyerLimit,
    InOrder,
    KeyClaimed,
    Missing,
    NoSuchTier,
    NotOnSale,
    NotPending,
    Refused,
    SoldOut,
)
from core.storage.records import Actor, Booking, BookingStatus, Drift
from core.storage.requests import BookingQuery, ReserveRequest
from modules.events.service import EventService

log = get_logger(__name__)


class BookingNotFound(NotFound):
    code, message = "BOOKING_NOT_FOUND", "Booking not found"


class BookingExpiredError(Conflict):
    code, message = "BOOKING_EXPIRED", "The hold expired; its seats were released"


class BookingNotPending(Conflict):
    code = "BOOKING_NOT_PENDING"


class BookingNotCancellable(Conflict):
    code = "BOOKING_NOT_CANCELLABLE"


class BookingInOrder(Conflict):
    code = "BOOKING_IN_ORDER"


@dataclass(frozen=True, slots=True)
class BookingRequest:
    event_id: str
    tier: str
    quantity: int
    hold: bool = False
    external_ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    admission_token: str | None = None
    waitlist_entry_id: str | None = None
    access_code: str | None = None


@dataclass(frozen=True, slots=True)
class Booked:
    booking: Booking
    replayed: bool


class BookingService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.events = EventService(ctx)
        self.hold_ttl = timedelta(seconds=ctx.settings.hold_ttl_seconds)
        self.max_pending = ctx.settings.max_pending_per_user

    async def book(self, principal: Principal, request: BookingRequest) -> Booked:
        """Reserve seats for the caller. Partners sell to many customers: neither the event's
        per-customer limit nor the hold cap applies to them (their rate limit does)."""
        now = clock.now()
        event = await self.events.open_sale(
            principal, request.event_id, request.admission_token, now
        )
        consumer = not principal.is_partner
        reserve = ReserveRequest(
            event_id=event.id,
            tier=request.tier,
            quantity=request.quantity,
            owner_id=principal.id,
            now=now,
            hold_until=now + self.hold_ttl if request.hold else None,
            max_per_user=event.max_per_user if consumer else None,
            max_pending=self.max_pending if consumer else None,
            partner_id=principal.id if principal.is_partner else None,
            external_ref=request.external_ref,
            idempotency_key=request.idempotency_key,
            request_hash=request.request_hash,
            actor=principal.actor,
            waitlist_entry_id=request.waitlist_entry_id,
            access_code=request.access_code,
        )
        try:
            reservation = await self.storage.bookings.reserve(reserve)
        except KeyClaimed:
            raise IdempotencyKeyReused() from None  # the key made an order
        except Refused as refused:
            BOOKINGS.labels(_OUTCOMES.get(type(refused), "refused")).inc()
            if request.idempotency_key:  # a retry after the sale closed gets its booking back
                existing = await self.storage.bookings.get_by_key(
                    principal.id, request.idempotency_key
                )
                if existing is not None:
                    return self._checked(existing, request, replayed=True)
            raise policy.refusal_error(refused, event, request.tier) from None
        BOOKINGS.labels("existing" if reservation.replayed else "created").inc()
        if not reservation.replayed:
            await self.events.invalidate(event.id)
        return self._checked(reservation.booking, request, replayed=reservation.replayed)

    @staticmethod
    def _checked(booking: Booking, request: BookingRequest, *, replayed: bool) -> Booked:
        if replayed and booking.request_hash != request.request_hash:
            raise IdempotencyKeyReused()
        return Booked(booking, replayed)

    async def confirm(self, principal: Principal, booking_id: str) -> Booking:
        """pending → confirmed. A confirmation is a sale: storage refuses it, in the same
        atomic step, once the event has started."""
        current = await self.get(principal, booking_id)
        if current.owner_id != principal.id:
            raise BookingNotFound()  # an admin sees it, but only its buyer can confirm it
        try:
            booking = await self.storage.bookings.confirm(
                booking_id, principal.id, clock.now(), principal.actor
            )
        except Missing:
            raise BookingNotFound() from None
        except BookingExpired:
            raise BookingExpiredError() from None
        except NotPending as exc:
            raise BookingNotPending(f"The booking is {exc.current}, not pending") from None
        except InOrder as exc:
            raise _in_order(exc) from None
        except NotOnSale:
            raise EventNotBookable(STARTED_CONFIRM) from None
        await self.events.invalidate(booking.event_id)
        return booking

    async def cancel(self, principal: Principal, booking_id: str) -> Booking:
        """Cancel a booking: its buyer until the event starts; the event's organizer or an
        admin at any time."""
        booking = await self.storage.bookings.get(booking_id)
        if booking is None:
            raise BookingNotFound()
        event = await self.storage.events.get(booking.event_id, include_deleted=True)
        owner = policy.cancel_scope(
            principal, booking.owner_id, event, clock.now(), BookingNotFound
        )
        return await self.cancel_owned(owner, booking_id, principal.actor)

    async def cancel_owned(self, owner_id: str | None, booking_id: str, actor: Actor) -> Booking:
        """Cancel `booking_id` if `owner_id` owns it (None: whoever does)."""
        try:
            booking = await self.storage.bookings.cancel(booking_id, owner_id, clock.now(), actor)
        except Missing:
            raise BookingNotFound() from None
        except NotPending as exc:
            raise BookingNotCancellable(
                f"A booking that is {exc.current} cannot be cancelled"
            ) from None
        except InOrder as exc:
            raise _in_order(exc) from None
        await self.events.invalidate(booking.event_id)
        return booking

    async def release_expired(self) -> int:
        """Give every expired hold's seats back, and end lapsed waiting-list offers and codes'
        holds (their seats pass on): the sweeper and `ticketboss expire-holds`."""
        now = clock.now()
        released = await self.storage.bookings.release_expired(now)
        return released + await self.storage.waitlist.expire(now)

    async def reconcile(self, *, fix: bool) -> list[Drift]:
        """Compare every seat counter with the bookings, offers and codes; with `fix`, end
        what lapsed first and repair the drift found."""
        if fix:
            await self.storage.waitlist.expire(clock.now())
        return await self.storage.bookings.recount(clock.now(), fix=fix)

    async def get(self, principal: Principal, booking_id: str) -> Booking:
        booking = await self.storage.bookings.get(booking_id)
        if booking is None or not policy.admin_or_owner(principal, booking.owner_id):
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
        query = BookingQuery(
            owner_id=policy.listed_owner(principal, user_id),
            event_id=event_id,
            status=status,
            before_id=before_id,
            limit=limit,
        )
        return await self.storage.bookings.find(query)


def _in_order(exc: InOrder) -> BookingInOrder:
    return BookingInOrder(
        f"This booking is part of order {exc.order_id}; confirm or cancel the order",
        extra={"orderId": exc.order_id},
    )


_OUTCOMES: dict[type[Refused], str] = {
    NoSuchTier: "no_tier",
    NotOnSale: "not_on_sale",
    SoldOut: "sold_out",
    BuyerLimit: "buyer_limit",
}


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
