"""From change records to mail: a consumer of the change-log relay (`core.outbox`).

The relay hands every change over at least once, after it was written in the same atomic
step as its cause. Each mail's id is derived from the change (and the recipient), so a batch
handed over twice makes no second mail; the sender (`sender.py`) sends each mail once.

What a buyer is told:
- a booking on its own confirmed (`booking.confirmed`, or `booking.created` bought at once):
  booking_confirmed, its QR codes and an .ics;
- an order confirmed (likewise): order_receipt, every line with its price, the QR codes and an .ics;
- `booking.cancelled` / `order.cancelled` by the buyer or an organizer: booking_cancelled;
- `event.cancelled`: event_cancelled, one per holder (whatever they held), and nothing else
  for the bookings that the cancellation ended in the same step;
- `waitlist.offered`: waitlist_offered, the seats held for them and until when.

Accounts without a user (partners' bookings) get no mail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from core import clock
from core.config import Settings
from core.deps import AppContext
from core.storage.port import Storage
from core.storage.records import Booking, Change, Event, Mail, User, as_fields
from core.storage.requests import BookingQuery
from modules.checkin.service import seat_codes
from modules.notifications.render import WITH_TICKETS

PAGE = 200
NOT_USERS_MAX = 10_000


def mail_id(change: Change, recipient: str) -> str:
    """`<change id>-<8 hex of the recipient>`: deterministic, and ordered as the changes are."""
    return f"{change.id}-{hashlib.sha256(recipient.encode()).hexdigest()[:8]}"


LINE_FIELDS = ("ticket_number", "tier", "quantity", "unit_price_cents", "currency")


def line(fields: Mapping[str, Any]) -> dict[str, Any]:
    """What a message says of one booking (from its change record's data or the record)."""
    return {name: fields[name] for name in LINE_FIELDS}


def event_params(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_name": event.name,
        "venue": event.venue,
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat() if event.ends_at else None,
    }


def template_of(change: Change) -> str | None:
    """Which message a change makes, if any. A sale is confirmed by `.confirmed` (a hold
    paid) or by `.created` already confirmed (bought at once)."""
    if change.subject == "event":
        return "event_cancelled" if change.type == "event.cancelled" else None
    if change.subject == "waitlist":
        return "waitlist_offered" if change.type == "waitlist.offered" else None
    if change.subject == "booking" and change.order_id is not None:
        return None  # the order's own change tells the buyer about all its bookings
    what = change.type.split(".", 1)[1]
    if what == "confirmed" or (what == "created" and change.data.get("status") == "confirmed"):
        return "booking_confirmed" if change.subject == "booking" else "order_receipt"
    return "booking_cancelled" if what == "cancelled" else None


def ended_by_event(event: Event | None, at: datetime) -> bool:
    """The booking or order was ended by its event's cancellation (the same atomic step)."""
    return event is not None and event.status == "cancelled" and event.updated_at == at


def new_mail(
    mail_id: str, template: str, to: str, params: dict[str, Any], settings: Settings
) -> Mail:
    """A mail row, due now, retried for MAIL_RETRY_WINDOW_SECONDS."""
    created = clock.now()
    return Mail(
        id=mail_id,
        template=template,
        to=to,
        params=params,
        created_at=created,
        next_attempt_at=created,
        retry_until=created + timedelta(seconds=settings.mail_retry_window_seconds),
    )


class MailFromChanges:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings
        self.events: dict[str, Event | None] = {}
        self.users: dict[str, User | None] = {}
        self.not_users: set[str] = set()
        """Owners that are no account (partners): an owner is an account from its first sale
        or never, so this holds across batches (bounded: cleared past NOT_USERS_MAX)."""

    async def __call__(self, changes: Sequence[Change]) -> None:
        # One batch of an on-sale peak is hundreds of sales of one event by a few buyers:
        # each event and account is read once per batch, not once per change.
        self.events, self.users = {}, {}
        mails: list[Mail] = []
        for change in changes:
            mails += await self.mails_of(change)
        for start in range(0, len(mails), 500):
            await self.storage.mail.enqueue(mails[start : start + 500])

    async def mails_of(self, change: Change) -> list[Mail]:
        template = template_of(change)
        if template is None:
            return []
        if change.event_id not in self.events:
            self.events[change.event_id] = await self.storage.events.get(
                change.event_id, include_deleted=True
            )
        event = self.events[change.event_id]
        if event is None:
            return []
        if template == "event_cancelled":
            return await self._holders(change, event)
        if template == "booking_cancelled" and ended_by_event(event, change.occurred_at):
            return []  # event_cancelled says it once
        if template == "waitlist_offered":
            offer = {k: change.data.get(k) for k in ("tier", "quantity", "offer_expires_at")}
            mail = await self._mail(change, change.owner_id, template, event, **offer)
            return [mail] if mail else []
        extra: dict[str, Any] = {}
        if change.subject == "booking":  # its row is in the change; tickets need the booking
            lines = [line(change.data)]
            bookings = await self._bookings(change) if template in WITH_TICKETS else []
        else:  # an order: one read gives both its lines and its tickets
            bookings = await self._bookings(change)
            lines = [line(as_fields(b)) for b in bookings]
        if template in WITH_TICKETS:
            extra["tickets"] = await seat_codes(self.storage, bookings)
        mail = await self._mail(change, change.owner_id, template, event, lines=lines, **extra)
        return [mail] if mail else []

    async def _bookings(self, change: Change) -> list[Booking]:
        if change.subject == "booking":
            booking = await self.storage.bookings.get(change.subject_id)
            return [booking] if booking else []
        order = await self.storage.orders.get(change.subject_id)
        return list(order.bookings) if order else []

    async def _holders(self, change: Change, event: Event) -> list[Mail]:
        """One mail per account whose bookings the cancellation ended."""
        held: dict[str, list[dict[str, Any]]] = {}
        before: str | None = None
        while True:
            page = await self.storage.bookings.find(
                BookingQuery(event_id=event.id, status="cancelled", before_id=before, limit=PAGE)
            )
            for b in page:
                if b.updated_at == change.occurred_at:
                    held.setdefault(b.owner_id, []).append(line(as_fields(b)))
            if len(page) < PAGE:
                break
            before = page[-1].id
        mails = [
            await self._mail(change, owner, "event_cancelled", event, lines=lines)
            for owner, lines in sorted(held.items())
        ]
        return [m for m in mails if m is not None]

    async def _mail(
        self,
        change: Change,
        owner_id: str | None,
        template: str,
        event: Event,
        **params: Any,
    ) -> Mail | None:
        if not owner_id or owner_id in self.not_users:
            return None
        if owner_id not in self.users:
            self.users[owner_id] = await self.storage.users.get(owner_id)
        user = self.users[owner_id]
        if user is None:
            if len(self.not_users) >= NOT_USERS_MAX:
                self.not_users.clear()
            self.not_users.add(owner_id)
            return None
        params = {
            "name": user.name,
            "subject_id": change.subject_id,
            "occurred_at": change.occurred_at.isoformat(),
            **event_params(event),
            **params,
        }
        return new_mail(mail_id(change, user.id), template, user.email, params, self.settings)


async def start_mail_from_changes(ctx: AppContext) -> None:
    """Start-up hook: every relayed change that concerns a buyer becomes their mail."""
    ctx.outbox.subscribe(MailFromChanges(ctx.storage, ctx.settings))
