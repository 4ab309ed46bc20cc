"""The organizer's CSV files, streamed a page of bookings at a time (csv module quoting).

A cell is text a spreadsheet may run: one starting with `=`, `+`, `-`, `@`, a tab or a
carriage return gets a leading apostrophe (OWASP's CSV injection advice), so a buyer named
`=HYPERLINK(…)` stays a name."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

from core.storage.records import Booking, User
from modules.checkin.service import CheckinService, has_tickets, status_of, ticket_id

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ATTENDEE_COLUMNS = (
    "ticket_id",
    "ticket_number",
    "seat",
    "tier",
    "status",
    "checked_in_at",
    "buyer_name",
    "buyer_email",
    "partner_id",
    "external_ref",
    "booking_id",
    "order_id",
)
SALES_COLUMNS = (
    "booking_id",
    "ticket_number",
    "order_id",
    "status",
    "tier",
    "quantity",
    "unit_price_cents",
    "total_cents",
    "currency",
    "buyer_email",
    "partner_id",
    "external_ref",
    "created_at",
    "updated_at",
)


def safe(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def lines(rows: Iterable[Iterable[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([safe(cell) for cell in row] for row in rows)
    return out.getvalue()


class Buyers:
    """Accounts by id, each read once per file."""

    def __init__(self, service: CheckinService) -> None:
        self.storage = service.storage
        self.known: dict[str, User | None] = {}

    async def of(self, booking: Booking) -> User | None:
        if booking.owner_id not in self.known:
            self.known[booking.owner_id] = await self.storage.users.get(booking.owner_id)
        return self.known[booking.owner_id]


async def attendees(service: CheckinService, event_id: str) -> AsyncIterator[str]:
    yield lines([ATTENDEE_COLUMNS])
    entered = await service.storage.checkin.entries(event_id)
    buyers = Buyers(service)
    async for booking in service.bookings_of(event_id):
        if not has_tickets(booking):
            continue
        buyer = await buyers.of(booking)
        rows = []
        for seat in range(1, booking.quantity + 1):
            tid = ticket_id(booking.id, seat)
            at = entered.get(tid)
            rows.append(
                (
                    tid,
                    booking.ticket_number,
                    seat,
                    booking.tier,
                    status_of(booking, at is not None),
                    at.isoformat() if at else None,
                    buyer.name if buyer else None,
                    buyer.email if buyer else None,
                    booking.partner_id,
                    booking.external_ref,
                    booking.id,
                    booking.order_id,
                )
            )
        yield lines(rows)


async def sales(service: CheckinService, event_id: str) -> AsyncIterator[str]:
    yield lines([SALES_COLUMNS])
    buyers = Buyers(service)
    async for b in service.bookings_of(event_id):
        buyer = await buyers.of(b)
        yield lines(
            [
                (
                    b.id,
                    b.ticket_number,
                    b.order_id,
                    b.status,
                    b.tier,
                    b.quantity,
                    b.unit_price_cents,
                    b.total_cents,
                    b.currency,
                    buyer.email if buyer else None,
                    b.partner_id,
                    b.external_ref,
                    b.created_at.isoformat(),
                    b.updated_at.isoformat(),
                )
            ]
        )
