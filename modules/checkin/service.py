"""Tickets at the door: every seat of a confirmed booking is a ticket, its QR code a JWS
signed with the event's key; check-in lists, scanner devices, and redemption.

A ticket is never written anywhere: its id is `<booking id>-<seat>` and its state is derived
(the booking's status, the redemptions recorded for it), so the booking path does no extra
work. Which scan lets a ticket in is decided only by the store's unique key (see
CheckinStore.redeem); everything before it here only refuses what can be refused."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from core import clock
from core.deps import AppContext
from core.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from core.security import Principal, token_hash
from core.storage.errors import DuplicateKey, Missing
from core.storage.port import Storage
from core.storage.records import (
    Booking,
    CheckinList,
    Event,
    Scan,
    ScanAnswer,
    Scanner,
    ScanResult,
    ScanType,
    SigningKey,
    new_id,
)
from core.storage.requests import BookingQuery
from modules.bookings.service import BookingService
from modules.checkin import signing
from modules.checkin.schemas import TicketStatus
from modules.events.service import EventService
from modules.orders.service import OrderService

FIRST_KID = "k0"
"""The first key of every event: made once, by whichever request needs it first (its fixed
kid makes concurrent first requests agree on one key)."""
TOKEN_PREFIX = "sct_"
CLOCK_SKEW = timedelta(minutes=5)
PAGE = 200


class CheckinListNotFound(NotFound):
    code, message = "CHECKIN_LIST_NOT_FOUND", "Check-in list not found"


class ScannerNotFound(NotFound):
    code, message = "SCANNER_NOT_FOUND", "Scanner not found"


class SigningKeyNotFound(NotFound):
    code, message = "SIGNING_KEY_NOT_FOUND", "Signing key not found"


class LastSigningKey(Conflict):
    code = "LAST_SIGNING_KEY"
    message = "An event keeps at least one signing key: rotate first, then remove the old one"


class InvalidScannerToken(Unauthorized):
    code, message = "INVALID_SCANNER_TOKEN", "The scanner token is unknown or revoked"


def ticket_id(booking_id: str, seat: int) -> str:
    return f"{booking_id}-{seat}"


def parse_ticket_id(tid: str) -> tuple[str, int] | None:
    booking_id, _, seat = tid.rpartition("-")
    if not booking_id or not seat.isdigit() or len(seat) > 3:
        return None
    return booking_id, int(seat)


def ticket_ids(booking: Booking) -> list[str]:
    return [ticket_id(booking.id, seat) for seat in range(1, booking.quantity + 1)]


def has_tickets(booking: Booking) -> bool:
    """Confirmed seats are tickets; a cancelled booking's stay listed, revoked. Holds (and
    holds that expired) never had any."""
    return booking.status in ("confirmed", "cancelled")


def status_of(booking: Booking, entered: bool) -> TicketStatus:
    if booking.status != "confirmed":
        return "revoked"
    return "used" if entered else "valid"


def shown(booking: Booking, seat: int) -> dict[str, Any]:
    """What a scanner is shown of a ticket."""
    return {
        "id": ticket_id(booking.id, seat),
        "eventId": booking.event_id,
        "tier": booking.tier,
        "bookingId": booking.id,
        "ticketNumber": booking.ticket_number,
        "seat": seat,
    }


@dataclass(frozen=True, slots=True)
class Ticket:
    booking: Booking
    seat: int
    status: TicketStatus
    qr: str

    @property
    def id(self) -> str:
        return ticket_id(self.booking.id, self.seat)


@dataclass(frozen=True, slots=True)
class ScanIn:
    qr: str
    nonce: str
    type: ScanType
    scanned_at: datetime | None


async def signing_keys(storage: Storage, event_id: str) -> list[SigningKey]:
    """The event's keys, the first made now if it has none yet."""
    keys = await storage.checkin.keys(event_id)
    if keys:
        return keys
    try:
        await storage.checkin.add_key(signing.new_key(event_id, FIRST_KID, clock.now()))
    except DuplicateKey:
        pass  # a concurrent request made it
    return await storage.checkin.keys(event_id)


def qr_of(key: SigningKey, booking: Booking, seat: int) -> str:
    """The ticket's QR payload; `iat` is the booking's creation, so it never changes."""
    return signing.sign(
        key,
        tid=ticket_id(booking.id, seat),
        eid=booking.event_id,
        tier=booking.tier,
        iat=booking.created_at,
    )


async def seat_codes(storage: Storage, bookings: Sequence[Booking]) -> list[dict[str, str]]:
    """Every seat's label (`<ticket number>/<seat>`) and QR payload, for a message."""
    if not bookings:
        return []
    key = (await signing_keys(storage, bookings[0].event_id))[-1]
    return [
        {"label": f"{b.ticket_number}/{seat}", "qr": qr_of(key, b, seat)}
        for b in bookings
        for seat in range(1, b.quantity + 1)
    ]


class CheckinService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.storage = ctx.storage
        self.events = EventService(ctx)

    # Keys

    async def signing_keys(self, event_id: str) -> list[SigningKey]:
        return await signing_keys(self.storage, event_id)

    async def public_keys(self, principal: Principal | None, event_id: str) -> list[SigningKey]:
        event = await self.events.visible(principal, event_id)
        return await self.signing_keys(event.id)

    async def rotate(self, principal: Principal, event_id: str) -> list[SigningKey]:
        """A new key signs from now on; the older ones still verify until they are removed."""
        event = await self.events.managed(principal, event_id)
        await self.signing_keys(event.id)
        newest = signing.new_key(event.id, new_id(), clock.now())
        await self.storage.checkin.add_key(newest)
        return await self.storage.checkin.keys(event.id)

    async def remove_key(self, principal: Principal, event_id: str, kid: str) -> None:
        """Tickets signed with it are `unknown` from now on (they show their new QR code)."""
        event = await self.events.managed(principal, event_id)
        keys = await self.storage.checkin.keys(event.id)
        if not any(k.kid == kid for k in keys):
            raise SigningKeyNotFound()
        if len(keys) == 1:
            raise LastSigningKey()
        try:
            await self.storage.checkin.remove_key(event.id, kid)
        except Missing:
            raise SigningKeyNotFound() from None

    # Tickets

    def tickets_of(
        self, bookings: Sequence[Booking], key: SigningKey, entered: dict[str, datetime]
    ) -> list[Ticket]:
        return [
            Ticket(
                booking=b,
                seat=seat,
                status=status_of(b, ticket_id(b.id, seat) in entered),
                qr=qr_of(key, b, seat),
            )
            for b in bookings
            if has_tickets(b)
            for seat in range(1, b.quantity + 1)
        ]

    async def tickets(self, bookings: Sequence[Booking]) -> list[Ticket]:
        """The tickets of bookings of one event."""
        holding = [b for b in bookings if has_tickets(b)]
        if not holding:
            return []
        event_id = holding[0].event_id
        key = (await self.signing_keys(event_id))[-1]
        ids = [tid for b in holding for tid in ticket_ids(b)]
        entered = await self.storage.checkin.entries(event_id, ticket_ids=ids)
        return self.tickets_of(holding, key, entered)

    async def booking_tickets(self, principal: Principal, booking_id: str) -> list[Ticket]:
        booking = await BookingService(self.ctx).get(principal, booking_id)
        return await self.tickets([booking])

    async def order_tickets(self, principal: Principal, order_id: str) -> list[Ticket]:
        order = await OrderService(self.ctx).get(principal, order_id)
        return await self.tickets(order.bookings)

    # Lists and scanners (the organizer's)

    async def create_list(
        self,
        principal: Principal,
        event_id: str,
        name: str,
        tiers: Sequence[str] | None,
        opens_at: datetime | None,
    ) -> CheckinList:
        event = await self.events.managed(principal, event_id)
        unknown = [code for code in tiers or () if event.tier(code) is None]
        if unknown:
            raise ValidationFailed(
                errors=[{"field": "tiers", "message": f"no such tier: {', '.join(unknown)}"}]
            )
        checkin_list = CheckinList(
            id=new_id(),
            event_id=event.id,
            name=name,
            tiers=tuple(tiers or ()),
            created_at=clock.now(),
            opens_at=opens_at,
        )
        return await self.storage.checkin.create_list(checkin_list)

    async def lists(self, principal: Principal, event_id: str) -> list[CheckinList]:
        event = await self.events.managed(principal, event_id)
        return await self.storage.checkin.lists(event.id)

    async def create_scanner(
        self, principal: Principal, event_id: str, name: str
    ) -> tuple[Scanner, str]:
        event = await self.events.managed(principal, event_id)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        scanner = Scanner(new_id(), event.id, name, token_hash(token), clock.now())
        return await self.storage.checkin.create_scanner(scanner), token

    async def scanners(self, principal: Principal, event_id: str) -> list[Scanner]:
        event = await self.events.managed(principal, event_id)
        return await self.storage.checkin.scanners(event.id)

    async def revoke_scanner(self, principal: Principal, event_id: str, scanner_id: str) -> None:
        event = await self.events.managed(principal, event_id)
        scanner = await self.storage.checkin.get_scanner(scanner_id)
        if scanner is None or scanner.event_id != event.id:
            raise ScannerNotFound()
        await self.storage.checkin.revoke_scanner(scanner.id, clock.now())

    # At the door (a scanner's)

    async def scanner(self, token: str | None) -> Scanner:
        """The live scanner this token is, else 401 (without saying which part is wrong)."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise InvalidScannerToken()
        scanner = await self.storage.checkin.scanner_by_token(token_hash(token))
        if scanner is None or scanner.revoked_at is not None:
            raise InvalidScannerToken()
        return scanner

    async def scanner_list(self, scanner: Scanner, list_id: str) -> CheckinList:
        checkin_list = await self.storage.checkin.get_list(list_id)
        if checkin_list is None or checkin_list.event_id != scanner.event_id:
            raise CheckinListNotFound()
        return checkin_list

    async def redeem(self, scanner: Scanner, list_id: str, scan: ScanIn) -> ScanAnswer:
        checkin_list = await self.scanner_list(scanner, list_id)
        now = clock.now()
        scanned_at = self._scanned_at(scan.scanned_at, now, "scannedAt")
        keys = await self.storage.checkin.keys(scanner.event_id)
        return await self.storage.checkin.redeem(
            await self._scan(scanner, checkin_list, keys, scan, scanned_at, now)
        )

    async def batch(
        self, scanner: Scanner, list_id: str, scans: Sequence[ScanIn]
    ) -> list[tuple[ScanIn, ScanAnswer]]:
        """Offline scans in the order they were made: the first scan of a ticket is the one
        that let it in, a later one is its duplicate."""
        checkin_list = await self.scanner_list(scanner, list_id)
        now = clock.now()
        for n, scan in enumerate(scans):
            self._scanned_at(scan.scanned_at, now, f"scans.{n}.scannedAt")
        keys = await self.storage.checkin.keys(scanner.event_id)
        answered = []
        for scan in sorted(scans, key=lambda s: (s.scanned_at or now, s.nonce)):
            at = scan.scanned_at or now
            decided = await self._scan(scanner, checkin_list, keys, scan, at, now)
            answered.append((scan, await self.storage.checkin.redeem(decided)))
        return answered

    def _scanned_at(self, scanned_at: datetime | None, now: datetime, field: str) -> datetime:
        if scanned_at is None:
            return now
        if scanned_at > now + CLOCK_SKEW:
            raise ValidationFailed(
                errors=[{"field": field, "message": "is more than 5 minutes in the future"}]
            )
        return scanned_at

    async def _scan(
        self,
        scanner: Scanner,
        checkin_list: CheckinList,
        keys: Sequence[SigningKey],
        scan: ScanIn,
        scanned_at: datetime,
        now: datetime,
    ) -> Scan:
        """The scan to record: every refusal that can be decided without the store decided."""
        base = Scan(
            scanner_id=scanner.id,
            nonce=scan.nonce,
            list_id=checkin_list.id,
            event_id=scanner.event_id,
            type=scan.type,
            scanned_at=scanned_at,
            at=now,
        )
        claims = signing.verify(scan.qr, keys)
        parsed = parse_ticket_id(claims["tid"]) if claims else None
        if claims is None or parsed is None or claims["eid"] != scanner.event_id:
            return _refused(base, "unknown")
        booking = await self.storage.bookings.get(parsed[0])
        if (
            booking is None
            or booking.event_id != scanner.event_id
            or booking.tier != claims["tier"]
            or not 1 <= parsed[1] <= booking.quantity
            or not has_tickets(booking)
        ):
            return _refused(base, "unknown")
        ticket = shown(booking, parsed[1])
        result: ScanResult | None = None
        if booking.status != "confirmed":
            result = "revoked"
        elif checkin_list.tiers and booking.tier not in checkin_list.tiers:
            result = "wrong_list"
        elif checkin_list.opens_at is not None and scanned_at < checkin_list.opens_at:
            result = "not_yet_valid"
        return replace(
            base, ticket_id=ticket["id"], tier=booking.tier, refused=result, ticket=ticket
        )

    # Offline export, door figures, CSV

    async def export(self, scanner: Scanner, list_id: str) -> dict[str, Any]:
        checkin_list = await self.scanner_list(scanner, list_id)
        keys = await self.signing_keys(scanner.event_id)
        entered = await self.storage.checkin.entries(scanner.event_id, list_id=checkin_list.id)
        tickets: list[dict[str, Any]] = []
        revoked: list[str] = []
        async for booking in self.bookings_of(scanner.event_id):
            if not has_tickets(booking):
                continue
            if booking.status != "confirmed":
                revoked += ticket_ids(booking)
            elif not checkin_list.tiers or booking.tier in checkin_list.tiers:
                tickets += [
                    {"id": tid, "tier": booking.tier, "status": status_of(booking, tid in entered)}
                    for tid in ticket_ids(booking)
                ]
        return {
            "list": checkin_list,
            "keys": keys,
            "tickets": tickets,
            "revoked": revoked,
            "generated_at": clock.now(),
        }

    async def bookings_of(self, event_id: str) -> AsyncIterator[Booking]:
        """Every booking of the event, newest first, a page at a time."""
        before: str | None = None
        while True:
            page = await self.storage.bookings.find(
                BookingQuery(event_id=event_id, before_id=before, limit=PAGE)
            )
            for booking in page:
                yield booking
            if len(page) < PAGE:
                return
            before = page[-1].id

    async def managed_event(self, principal: Principal, event_id: str) -> Event:
        return await self.events.managed(principal, event_id)

    async def door(self, principal: Principal, event_id: str) -> dict[str, Any]:
        """Tickets expected (confirmed seats) and let in, per tier and per list."""
        event = await self.events.managed(principal, event_id)
        counts = await self.storage.checkin.counts(event.id)
        expected = {
            t.code: t.confirmed
            for t in await self.storage.events.availability(event.id, clock.now())
        }
        anywhere = {c.tier: c.checked_in for c in counts if c.list_id is None}
        lists = []
        for checkin_list in await self.storage.checkin.lists(event.id):
            admits = checkin_list.tiers or tuple(expected)
            lists.append(
                {
                    "list_id": checkin_list.id,
                    "name": checkin_list.name,
                    "expected": sum(expected.get(t, 0) for t in admits),
                    "checked_in": sum(c.checked_in for c in counts if c.list_id == checkin_list.id),
                }
            )
        return {
            "event_id": event.id,
            "tiers": [
                {"tier": code, "expected": n, "checked_in": anywhere.get(code, 0)}
                for code, n in expected.items()
            ],
            "lists": lists,
            "expected": sum(expected.values()),
            "checked_in": sum(anywhere.values()),
            "as_of": clock.now(),
        }


def _refused(base: Scan, result: ScanResult) -> Scan:
    return replace(base, refused=result)
