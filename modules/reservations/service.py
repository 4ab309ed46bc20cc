"""The partner contract on top of bookings: reservations are bookings of one bootstrapped event."""

from __future__ import annotations

from datetime import timedelta

from core.deps import AppContext
from core.logging import get_logger
from core.security import Principal
from core.storage.port import DuplicateKey
from core.storage.records import Booking, BookingQuery, Event, Tier, utcnow
from modules.bookings.service import BookingRequest, BookingService
from modules.events.service import EventService

log = get_logger(__name__)
TIER = "GA"
SYSTEM_OWNER = "system"


async def bootstrap_event(ctx: AppContext) -> None:
    """Create the contract's event on first start (published, one General Admission tier)."""
    s = ctx.settings
    if await ctx.storage.events.get(s.ticketboss_event_id, include_deleted=True):
        return
    now = utcnow()
    event = Event(
        id=s.ticketboss_event_id,
        owner_id=SYSTEM_OWNER,
        name=s.ticketboss_event_name,
        venue="Online",
        starts_at=s.ticketboss_event_starts_at,
        ends_at=s.ticketboss_event_starts_at + timedelta(hours=3),
        status="published",
        tiers=(Tier(TIER, "General Admission", 0, s.ticketboss_total_seats),),
        created_at=now,
        updated_at=now,
    )
    try:
        await ctx.storage.events.create(event)
        log.info("event_bootstrapped", event_id=event.id, seats=s.ticketboss_total_seats)
    except DuplicateKey:
        pass  # another worker created it first


class ReservationService:
    def __init__(self, ctx: AppContext) -> None:
        self.event_id = ctx.settings.ticketboss_event_id
        self.storage = ctx.storage
        self.bookings = BookingService(ctx)
        self.events = EventService(ctx)

    async def reserve(
        self, partner: Principal, seats: int, key: str | None, request_hash: str
    ) -> Booking:
        booked = await self.bookings.book(
            partner,
            BookingRequest(
                self.event_id, TIER, seats, idempotency_key=key, request_hash=request_hash
            ),
        )
        return booked.booking

    async def cancel(self, partner: Principal | None, reservation_id: str) -> Booking | None:
        booking = await self.storage.bookings.get(reservation_id)
        if booking is None or booking.event_id != self.event_id:
            return None
        if partner is not None and booking.owner_id != partner.id:
            return None
        admin = Principal(booking.owner_id, "admin")  # ownership was checked above
        return await self.bookings.cancel(admin, reservation_id)

    async def summary(self) -> tuple[Event, int, int]:
        """The event, its available seats and its active reservation count."""
        event = await self.storage.events.get(self.event_id)
        if event is None:
            raise LookupError(self.event_id)
        counts, now = await self.events.availability(self.event_id)
        available = sum(c.available for c in counts)
        return event, available, await self.storage.bookings.count_active(self.event_id, now)

    async def find(self, limit: int) -> list[Booking]:
        return await self.storage.bookings.find(BookingQuery(event_id=self.event_id, limit=limit))
