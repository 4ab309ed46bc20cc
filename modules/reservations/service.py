"""The partner contract on top of bookings: reservations are bookings of one bootstrapped event."""

from __future__ import annotations

from core.deps import AppContext
from core.errors import Conflict, Forbidden, NotFound
from core.policy import InsufficientTickets
from core.security import Principal
from core.storage.records import Actor, Booking, Tier
from core.storage.requests import BookingQuery
from modules.bookings.service import BookingRequest, BookingService
from modules.events.service import EventService, ensure_contract_event
from modules.reservations.schemas import EventSummary, ReservationIn

TIER = "GA"


class ReservationNotFound(NotFound):
    code, message = "RESERVATION_NOT_FOUND", "Reservation not found or already cancelled"


class PartnerMismatch(Forbidden):
    code, message = "PARTNER_MISMATCH", "partnerId does not match the bearer token"


async def bootstrap_event(ctx: AppContext) -> None:
    """Create the contract's event on first start (published, one General Admission tier)."""
    s = ctx.settings
    tier = Tier(TIER, "General Admission", 0, s.ticketboss_total_seats)
    await ensure_contract_event(
        ctx,
        s.ticketboss_event_id,
        s.ticketboss_event_name,
        "Online",
        s.ticketboss_event_starts_at,
        [tier],
    )


class ReservationService:
    def __init__(self, ctx: AppContext) -> None:
        self.event_id = ctx.settings.ticketboss_event_id
        self.storage = ctx.storage
        self.bookings = BookingService(ctx)
        self.events = EventService(ctx)

    async def reserve(
        self, partner: Principal | None, body: ReservationIn, key: str | None, request_hash: str
    ) -> Booking:
        """Book for `partner`, or, in anonymous mode (None), for the partnerId in the body."""
        if partner is not None and not await self._is(partner, body.partner_id):
            raise PartnerMismatch()
        owner = partner or Principal(body.partner_id, "partner")
        request = BookingRequest(
            self.event_id, TIER, body.seats, idempotency_key=key, request_hash=request_hash
        )
        try:
            return (await self.bookings.book(owner, request)).booking
        except InsufficientTickets:
            raise InsufficientTickets("Not enough seats left") from None

    async def _is(self, partner: Principal, partner_id: str) -> bool:
        """Partners may name themselves by id, client id or name."""
        if partner_id == partner.id:
            return True
        found = await self.storage.partners.get(partner.id)
        return found is not None and partner_id in (found.client_id, found.name)

    async def cancel(self, partner: Principal | None, reservation_id: str) -> Booking:
        """Cancel one of `partner`'s reservations (any reservation in anonymous mode)."""
        booking = await self.storage.bookings.get(reservation_id)
        if booking is None or booking.event_id != self.event_id:
            raise ReservationNotFound()
        if partner is not None and booking.owner_id != partner.id:
            raise ReservationNotFound()
        try:
            actor = partner.actor if partner else Actor("partner", booking.owner_id)
            return await self.bookings.cancel_owned(booking.owner_id, reservation_id, actor)
        except Conflict:
            raise ReservationNotFound() from None  # already cancelled or expired

    async def summary(self) -> EventSummary:
        event = await self.storage.events.get(self.event_id)
        if event is None:
            raise NotFound("The contract's event does not exist")
        counts, now = await self.events.availability(self.event_id)
        return EventSummary(
            eventId=event.id,
            name=event.name,
            totalSeats=sum(t.capacity for t in event.tiers),
            availableSeats=sum(c.available for c in counts),
            reservationCount=await self.storage.bookings.count_active(self.event_id, now),
            version=sum(t.version for t in event.tiers),
        )

    async def find(self, partner: Principal | None, limit: int) -> list[Booking]:
        """`partner`'s reservations (every reservation in anonymous mode, None)."""
        owner = partner.id if partner else None
        query = BookingQuery(owner_id=owner, event_id=self.event_id, limit=limit)
        return await self.storage.bookings.find(query)
