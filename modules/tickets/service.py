"""The tiered contract on top of bookings: tickets are bookings of one bootstrapped show.

Who owns a booking made here, by caller:
- a user token: the user; `userId` must be the caller's own id (403 otherwise);
- a partner token: the partner; `userId` is its reference for the customer, kept in the
  booking's `external_ref`, and listing or cancelling by `userId` matches on it;
- no token, in anonymous mode (`TICKETBOSS_ANONYMOUS_TIERS=true`): `anon:<userId>`, a name
  space of its own, so an anonymous caller can never act on a registered account's bookings.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import clock
from core.deps import AppContext
from core.errors import Forbidden, NotFound
from core.logging import get_logger
from core.policy import InsufficientTickets, TierNotFound, buyer_may_cancel
from core.security import Principal
from core.storage.records import Booking, Event, Tier
from core.storage.requests import BookingQuery
from modules.bookings.service import BookingRequest, BookingService
from modules.events.service import EventService, ensure_contract_event
from modules.tickets.schemas import TIER_NAMES, TIERS, BookIn

log = get_logger(__name__)
ANONYMOUS_PREFIX = "anon:"
LIST_LIMIT = 100
"""The most bookings one listing returns (newest first)."""
PARTNER_SCAN_LIMIT = 1_000
"""A partner's listing by customer reference reads at most this many of the partner's
newest bookings of the show (storage has no filter on the reference)."""
SCAN_PAGE = 100
SOLD_OUT_MESSAGE = "Requested quantity exceeds available tickets"


class TicketNotFound(NotFound):
    code, message = "TICKET_NOT_FOUND", "No tickets of that tier for this show"


class ShowNotFound(NotFound):
    code, message = "SHOW_NOT_FOUND", "The show does not exist"


class TicketBookingNotFound(NotFound):
    code, message = "BOOKING_NOT_FOUND", "Booking not found"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "bookingId", "message": "no such booking of this user"}])


class UserMismatch(Forbidden):
    code, message = "USER_MISMATCH", "userId does not match the bearer token"


@dataclass(frozen=True, slots=True)
class Buyer:
    """Whom a request acts for: the booking owner, and the customer reference for partners."""

    owner: Principal
    user_id: str
    customer_ref: str | None = None


def show_tiers(ctx: AppContext) -> tuple[Tier, ...]:
    s = ctx.settings
    prices_and_capacities = {
        "VIP": (s.ticketboss_tiered_vip_price_cents, s.ticketboss_tiered_vip_capacity),
        "FRONT_ROW": (
            s.ticketboss_tiered_front_row_price_cents,
            s.ticketboss_tiered_front_row_capacity,
        ),
        "GA": (s.ticketboss_tiered_ga_price_cents, s.ticketboss_tiered_ga_capacity),
    }
    return tuple(Tier(code, TIER_NAMES[code], *prices_and_capacities[code]) for code in TIERS)


async def bootstrap_show(ctx: AppContext) -> None:
    """Create the contract's show on first start (published, three priced tiers)."""
    s = ctx.settings
    if s.ticketboss_anonymous_tiers:
        log.warning("anonymous_tiers_enabled", detail="/api/tickets accepts unauthenticated calls")
    await ensure_contract_event(
        ctx,
        s.ticketboss_tiered_event_id,
        s.ticketboss_tiered_event_name,
        "Main Hall",
        s.ticketboss_tiered_event_starts_at,
        show_tiers(ctx),
    )


class TicketService:
    def __init__(self, ctx: AppContext) -> None:
        self.show_id = ctx.settings.ticketboss_tiered_event_id
        self.storage = ctx.storage
        self.bookings = BookingService(ctx)
        self.events = EventService(ctx)

    @staticmethod
    def buyer(caller: Principal | None, user_id: str) -> Buyer:
        """Whom `user_id` names for this caller (None: anonymous mode, no token)."""
        if caller is None:
            return Buyer(Principal(ANONYMOUS_PREFIX + user_id, "user"), user_id)
        if caller.is_partner:
            return Buyer(caller, user_id, customer_ref=user_id)
        if user_id != caller.id:
            raise UserMismatch(errors=[{"field": "userId", "message": UserMismatch.message}])
        return Buyer(caller, user_id)

    async def tickets(self) -> tuple[Event, dict[str, int]]:
        """The show (for prices and capacities) and each tier's available seats, computed from
        bookings like /api/v1/events/{id}/availability, through the same cache."""
        event = await self.events.for_booking(self.show_id)
        if event is None:
            raise ShowNotFound()
        return event, await self.available()

    async def available(self) -> dict[str, int]:
        counts, _ = await self.events.availability(self.show_id)
        return {c.code: c.available for c in counts}

    async def book(
        self, buyer: Buyer, body: BookIn, key: str | None, request_hash: str
    ) -> tuple[Booking, int]:
        """Book, and the tier's seats left once this booking is counted."""
        request = BookingRequest(
            self.show_id,
            body.tier,
            body.quantity,
            external_ref=buyer.customer_ref,
            idempotency_key=key,
            request_hash=request_hash,
        )
        try:
            booked = await self.bookings.book(buyer.owner, request)
        except TierNotFound:
            raise TicketNotFound(
                f"No {body.tier} tickets for this show",
                errors=[{"field": "tier", "message": f"tier must be one of {', '.join(TIERS)}"}],
            ) from None
        except InsufficientTickets as exc:
            raise InsufficientTickets(  # the contract answers a shortage with 422, not 409
                SOLD_OUT_MESSAGE,
                status_code=422,
                errors=[{"field": "quantity", "message": SOLD_OUT_MESSAGE}],
                extra={"availableQuantity": exc.extra.get("available", 0)},
            ) from None
        booking = booked.booking
        return booking, (await self.available()).get(booking.tier, 0)

    async def find(self, buyer: Buyer) -> list[Booking]:
        """The buyer's bookings of the show, newest first (at most LIST_LIMIT)."""
        if buyer.customer_ref is None:
            query = BookingQuery(owner_id=buyer.owner.id, event_id=self.show_id, limit=LIST_LIMIT)
            return await self.storage.bookings.find(query)
        found: list[Booking] = []
        before: str | None = None
        for _ in range(PARTNER_SCAN_LIMIT // SCAN_PAGE):
            page = await self.storage.bookings.find(
                BookingQuery(
                    owner_id=buyer.owner.id,
                    event_id=self.show_id,
                    before_id=before,
                    limit=SCAN_PAGE,
                )
            )
            found += [b for b in page if b.external_ref == buyer.customer_ref]
            if len(found) >= LIST_LIMIT or len(page) < SCAN_PAGE:
                break
            before = page[-1].id
        return found[:LIST_LIMIT]

    async def cancel(self, buyer: Buyer, booking_id: str) -> tuple[Booking, int]:
        """Cancel one of the buyer's bookings of the show; the tier's seats left after."""
        booking = await self.storage.bookings.get(booking_id)
        if (
            booking is None
            or booking.event_id != self.show_id
            or booking.owner_id != buyer.owner.id
            or (buyer.customer_ref is not None and booking.external_ref != buyer.customer_ref)
        ):
            raise TicketBookingNotFound()
        event = await self.events.for_booking(self.show_id)
        buyer_may_cancel(event, clock.now())
        cancelled = await self.bookings.cancel_owned(buyer.owner.id, booking_id, buyer.owner.actor)
        return cancelled, (await self.available()).get(cancelled.tier, 0)
