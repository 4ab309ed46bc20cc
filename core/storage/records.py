"""Plain domain records that cross the storage port. No driver types leak through here."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

Role = Literal["user", "organizer", "admin", "partner"]
ActorKind = Literal["user", "organizer", "admin", "partner", "system"]
EventStatus = Literal["draft", "published", "completed", "cancelled"]
BookingStatus = Literal["pending", "confirmed", "cancelled", "expired"]
ACTIVE_STATUSES: tuple[BookingStatus, ...] = ("pending", "confirmed")
"""Statuses that hold seats. A pending hold past its expiry still holds them until it is
released (by the booking path, the sweeper or `expire-holds`); availability ignores it."""

# Crockford's base32 without I, L, O, U: no look-alike characters on a printed ticket.
TICKET_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def as_fields(record: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record's fields as a flat dict, as the backends store them."""
    return {f.name: getattr(record, f.name) for f in fields(record) if f.name not in exclude}


def from_fields[R](cls: type[R], values: Any, **overrides: Any) -> R:
    """Build a record from anything with `keys()` and `[name]` (a row mapping, an asyncpg
    record, a document): extra keys are ignored, missing ones take the field's default."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{name: values[name] for name in names & set(values.keys())} | overrides)


_last_id = [0, 0]  # (ms, random part) of the last id made in this process


def new_id() -> str:
    """A 24-hex-character id whose order follows creation time (ms), then randomness; ids made
    by one process in the same millisecond still increase (like a monotonic ULID).

    Keyset pagination walks these in order, so rows created during a walk land after it.
    """
    ms, rand = time.time_ns() // 1_000_000, int.from_bytes(os.urandom(6))
    if ms <= _last_id[0]:
        ms, rand = _last_id[0], _last_id[1] + 1 + (rand & 0xFFFF)
        if rand >= 1 << 48:  # the millisecond's ids are used up: borrow the next one
            ms, rand = ms + 1, rand - (1 << 48)
    _last_id[:] = [ms, rand]
    return f"{ms:012x}{rand:012x}"


def new_ticket_number() -> str:
    """`TB-XXXX-XXXX-XX`: 50 random bits, unambiguous characters, unique by index."""
    bits = int.from_bytes(secrets.token_bytes(7)) >> 6  # one syscall for 50 random bits
    chars = "".join(TICKET_ALPHABET[(bits >> (5 * i)) & 31] for i in range(10))
    return f"TB-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: an account (by its role at the time) or the system itself."""

    kind: ActorKind
    id: str


SYSTEM_ACTOR = Actor("system", "system")
"""Expiry sweeps, start-up bootstraps and operators' commands."""


@dataclass(frozen=True, slots=True)
class Change:
    """One state change, recorded in the same atomic step as the change itself (the
    transactional outbox): the activity log, webhooks and live availability read these."""

    id: str
    type: str
    """`<subject>.<what happened>`: booking.created, event.published, order.cancelled…"""
    occurred_at: datetime
    actor: Actor
    subject: Literal["booking", "event", "order", "account", "waitlist"]
    """`account`: security notes (failed or refused sign-ins, refresh-token reuse), never
    handed to the outbox's consumers; their `event_id` is empty."""
    subject_id: str
    seq: int
    """The subject's version after the change: changes of one subject are numbered in order."""
    event_id: str
    data: dict[str, Any]
    """The subject's fields after the change (JSON: timestamps as ISO 8601 strings)."""
    booking_id: str | None = None
    order_id: str | None = None
    owner_id: str | None = None
    """The booking's (or order's) owner."""
    partner_id: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: Role
    password_hash: str
    created_at: datetime
    updated_at: datetime
    token_version: int = 0
    """Access tokens carry the version they were issued at; bumping it ends them all."""
    email_verified_at: datetime | None = None
    """When the account proved it reads `email` (a code mailed to it); None: not yet."""


@dataclass(frozen=True, slots=True)
class Partner:
    id: str
    name: str
    client_id: str
    secret_hash: str
    created_at: datetime
    token_version: int = 0


@dataclass(frozen=True, slots=True)
class Tier:
    code: str
    name: str
    price_cents: int
    capacity: int
    active: int = 0
    """Seats held by pending or confirmed bookings, changed in the booking's atomic step."""
    version: int = 0
    """Grows with every change to the tier's seats."""
    on_sale: bool = False
    blocked: int = 0
    """Seats held back from sale: offered to waiting-list entries, or reserved for an access
    code's holders; changed in the same atomic step as the offer or code that blocks them."""
    hidden: bool = False
    """Not listed, and sold only through an access code."""
    waitlist_open: bool = True
    """Whether buyers may join the tier's waiting list (and its entries get offers)."""

    @property
    def free(self) -> int:
        return self.capacity - self.active - self.blocked


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    owner_id: str
    name: str
    venue: str
    starts_at: datetime
    status: EventStatus
    tiers: tuple[Tier, ...]
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    ends_at: datetime | None = None
    max_per_user: int | None = None
    version: int = 1
    deleted_at: datetime | None = None
    queue: dict[str, Any] | None = None
    """The waiting room's settings in their API shape (`enabled`, `opensAt` as ISO text,
    `admitPerMinute`, `maxActive`, `sessionSeconds`), or None: no waiting room."""

    def tier(self, code: str) -> Tier | None:
        return next((t for t in self.tiers if t.code == code), None)


def hold_active(status: BookingStatus, expires_at: datetime | None, now: datetime) -> bool:
    """The hold rule: a pending booking or order holds its seats until its expiry. (The
    backends state it in their query languages: `hold_active` in sql/base.py and
    mongo/base.py.)"""
    return status == "pending" and expires_at is not None and expires_at > now


@dataclass(frozen=True, slots=True)
class Booking:
    id: str
    ticket_number: str
    event_id: str
    tier: str
    quantity: int
    unit_price_cents: int
    status: BookingStatus
    owner_id: str
    created_at: datetime
    updated_at: datetime
    currency: str = "USD"
    expires_at: datetime | None = None
    partner_id: str | None = None
    external_ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    version: int = 1
    """Grows with every change of the booking (its change records carry it as a sequence)."""
    order_id: str | None = None
    """The order the booking is part of: it is confirmed, cancelled and expires with it."""

    @property
    def total_cents(self) -> int:
        return self.unit_price_cents * self.quantity

    def is_active(self, now: datetime) -> bool:
        return self.status == "confirmed" or hold_active(self.status, self.expires_at, now)


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    event_id: str
    owner_id: str
    status: BookingStatus
    created_at: datetime
    updated_at: datetime
    bookings: tuple[Booking, ...] = ()
    expires_at: datetime | None = None
    partner_id: str | None = None
    external_ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    version: int = 1

    @property
    def total_cents(self) -> int:
        return sum(b.total_cents for b in self.bookings)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What `reserve` made, or (replayed) the booking the owner's key had made before."""

    booking: Booking
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Ordered:
    """What `reserve_order` made, or (replayed) the order the owner's key had made before."""

    order: Order
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class TierCount:
    """A tier's seats as computed from bookings (the definition of availability)."""

    code: str
    capacity: int
    pending: int
    confirmed: int
    blocked: int = 0
    """Seats offered to the waiting list or reserved by access codes (the tier's counter)."""
    hidden: bool = False

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.pending - self.confirmed - self.blocked)


@dataclass(frozen=True, slots=True)
class Drift:
    """A counter that disagrees with the bookings it counts."""

    event_id: str
    counter_of: str
    """`tier GA`, or `buyer <owner id> active` / `pending`."""
    counter: int
    actual: int

    def describe(self) -> str:
        return f"{self.event_id} {self.counter_of}: counter {self.counter}, bookings {self.actual}"


@dataclass(frozen=True, slots=True)
class RefreshToken:
    jti: str
    family_id: str
    user_id: str
    expires_at: datetime


DeliveryStatus = Literal["pending", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class Webhook:
    """An endpoint that receives the change records its owner may see, signed with `secret`.

    The secret is kept as it is (not hashed) because every delivery is signed with it; the
    API shows it only when it is made (creation, rotation)."""

    id: str
    owner_id: str
    owner_role: Role
    """The owner's role at creation; the scope is decided by the owner's current role."""
    url: str
    events: tuple[str, ...]
    """Change types (`booking.created`), `<subject>.*` or `*`."""
    secret: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    """The first failed attempt since the last success (None while healthy)."""

    def wants(self, change_type: str) -> bool:
        subject = change_type.split(".", 1)[0]
        return any(e in ("*", change_type, f"{subject}.*") for e in self.events)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One change record to send to one webhook: unique per (webhook, change). Its id is the
    `webhook-id` header, the same on every attempt (the receiver's idempotency key)."""

    id: str
    webhook_id: str
    change_id: str
    type: str
    subject_id: str
    seq: int
    """Deliveries of one subject to one webhook go in this order, one at a time."""
    payload: dict[str, Any]
    """The body as sent: `{type, timestamp, data}`."""
    created_at: datetime
    next_attempt_at: datetime
    retry_until: datetime
    """After this, a failed attempt is the last one: the delivery is `failed`."""
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_latency_ms: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    lease_holder: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one send of a delivery came to, and what happens next."""

    status: DeliveryStatus
    at: datetime
    next_attempt_at: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Mail:
    """One email in the mail outbox, made by the relay's consumer from its cause's change
    record (which was written in the same atomic step as the cause). Its id is derived from the cause, so a
    cause handed over twice makes one row, and it is the Message-ID's local part, the same on
    every attempt: receivers dedupe a message sent twice after a crash."""

    id: str
    template: str
    """Which message (`verify_email`, `booking_confirmed`…): modules/notifications renders it."""
    to: str
    params: dict[str, Any]
    """What the template needs (JSON); emptied once the mail is sent."""
    created_at: datetime
    next_attempt_at: datetime
    retry_until: datetime
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    lease_holder: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResetToken:
    """A password-reset token: only its hash is stored, one live per account (a new request
    replaces it), spent once."""

    user_id: str
    token_hash: str
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One of an event's Ed25519 ticket-signing keys. The private key is kept as it is (PKCS#8
    PEM), like a webhook secret, because tickets are signed with it; only `public_x` (the
    JWK's `x`) ever leaves the server. The newest key signs; older ones verify until removed."""

    event_id: str
    kid: str
    private_key: str
    public_x: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CheckinList:
    """A door's list: the tiers it admits (empty: all), from `opens_at` on (None: always)."""

    id: str
    event_id: str
    name: str
    tiers: tuple[str, ...]
    created_at: datetime
    opens_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Scanner:
    """A device allowed to check in tickets of one event, by the SHA-256 of its token only."""

    id: str
    event_id: str
    name: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


ScanResult = Literal["ok", "already_used", "revoked", "unknown", "wrong_list", "not_yet_valid"]
ScanType = Literal["entry", "exit"]


@dataclass(frozen=True, slots=True)
class Scan:
    """One scan to answer, once per (scanner, nonce). `refused` is the answer the service
    decided already (a bad signature, a revoked ticket…); None: redeem it, which only the
    store decides atomically (`ok` or `already_used`)."""

    scanner_id: str
    nonce: str
    list_id: str
    event_id: str
    type: ScanType
    scanned_at: datetime
    at: datetime
    ticket_id: str | None = None
    tier: str | None = None
    refused: ScanResult | None = None
    ticket: dict[str, Any] | None = None
    """What the answer shows of the ticket (None when nothing in the QR could be trusted)."""


@dataclass(frozen=True, slots=True)
class ScanAnswer:
    result: ScanResult
    ticket: dict[str, Any] | None
    scanned_at: datetime
    replayed: bool = False
    """This nonce was answered before: this is that answer again, and nothing changed."""


@dataclass(frozen=True, slots=True)
class DoorCount:
    """Tickets of one tier let in (at least once) through one list, or through any (None)."""

    list_id: str | None
    tier: str
    checked_in: int


CodePurpose = Literal["verify", "change"]


@dataclass(frozen=True, slots=True)
class EmailCode:
    """A 6-digit code mailed to `email`: proves the account reads that address (`verify`: its
    own; `change`: the address it is moving to). One live per account and purpose, stored as
    a salted hash only, spent once, refused after `attempts` reaches the limit."""

    user_id: str
    purpose: CodePurpose
    email: str
    code_hash: str
    salt: str
    expires_at: datetime
    created_at: datetime
    attempts: int = 0


WaitlistStatus = Literal["waiting", "offered", "booked", "expired", "left"]


@dataclass(frozen=True, slots=True)
class WaitlistEntry:
    """One account waiting for seats of one tier. `seq` orders the tier's entries (taken from
    the tier's own sequence in the join's atomic step); an offer blocks `quantity` seats until
    `offer_expires_at` (`offer_seconds` after it was made, fixed when the entry joined)."""

    id: str
    event_id: str
    tier: str
    owner_id: str
    quantity: int
    status: WaitlistStatus
    seq: int
    offer_seconds: int
    created_at: datetime
    updated_at: datetime
    offer_expires_at: datetime | None = None
    booking_id: str | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class AccessCode:
    """An organizer's code for one event: it unlocks `tiers` (hidden ones included) within its
    validity window for `max_uses` bookings. `uses` counts the bookings holding seats with it
    (a cancelled one gives its use back). A `reserve_seats` code holds `max_uses − uses` seats
    of its one tier back from sale while `holding` (enabled, not expired)."""

    id: str
    event_id: str
    code: str
    max_uses: int
    tiers: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    uses: int = 0
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    reserve_seats: bool = False
    holding: bool = False
    discount_percent: int = 0
    enabled: bool = True

    @property
    def held(self) -> int:
        """Seats this code blocks in its tier now."""
        return self.max_uses - self.uses if self.holding else 0
