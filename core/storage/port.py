"""The storage port: the atomic operations feature modules need, one Protocol per aggregate.

Every method is atomic by contract; each backend makes it so its own way (one SQL
statement or a short transaction, a MongoDB transaction). No session, connection or
transaction object crosses this boundary, so services compose operations but never hold locks.

One way to fail: reads return the record or None; every other operation returns its result
or raises one of the StorageError subclasses below (backends translate driver errors into
them in one place each: `sql/base.py`, `mongo/base.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from core.storage.records import (
    AccessCode,
    Actor,
    Attempt,
    Booking,
    Change,
    CheckinList,
    Delivery,
    DoorCount,
    Drift,
    EmailCode,
    Event,
    EventStatus,
    Mail,
    Order,
    Ordered,
    Partner,
    RefreshToken,
    Reservation,
    ResetToken,
    Role,
    Scan,
    ScanAnswer,
    Scanner,
    SigningKey,
    TierCount,
    User,
    WaitlistEntry,
    Webhook,
)
from core.storage.requests import (
    BookingQuery,
    ChangeQuery,
    CodePatch,
    EventQuery,
    OrderQuery,
    OrderRequest,
    ReserveRequest,
    TierPatch,
)

SpendOutcome = Literal["ok", "spent", "revoked", "unknown"]
"""`spent`: used before (a copy is being replayed); `revoked`: ended unused (logout, a new
password): only the first is a sign that someone else holds the token."""


class UserStore(Protocol):
    async def create(self, user: User) -> User:
        """Insert; DuplicateKey("email") when the (lower-cased) email exists."""

    async def get(self, user_id: str) -> User | None: ...
    async def get_by_email(self, email: str) -> User | None: ...

    async def set_role(self, user_id: str, role: Role, now: datetime) -> User:
        """Change the role and bump the token version (old access tokens end); Missing."""

    async def bump_token_version(self, user_id: str, now: datetime) -> User:
        """End every access token issued so far (logout); Missing."""

    async def set_password(self, user_id: str, password_hash: str, now: datetime) -> User:
        """Replace the password and end every session of the account in one atomic step: the
        token version moves on and every refresh token is revoked; Missing."""


class PartnerStore(Protocol):
    async def create(self, partner: Partner) -> Partner: ...
    async def get(self, partner_id: str) -> Partner | None: ...
    async def get_by_client_id(self, client_id: str) -> Partner | None: ...
    async def find(self, *, after_id: str | None, limit: int) -> list[Partner]: ...

    async def set_secret(self, partner_id: str, secret_hash: str) -> Partner:
        """Replace the secret and bump the token version (old access tokens end); Missing."""


class TokenStore(Protocol):
    async def add(self, token: RefreshToken) -> None: ...

    async def spend(self, jti: str, now: datetime) -> SpendOutcome:
        """Mark a refresh token used, once: "ok" the first time, "spent" after (or revoked)."""

    async def revoke_family(self, family_id: str) -> None: ...


class EventStore(Protocol):
    """Every change also records its Change (event.created, event.updated, event.published,
    event.cancelled, event.completed, event.deleted, and booking.* for the bookings it ends)
    in the same atomic step."""

    async def create(self, event: Event, actor: Actor) -> Event:
        """Insert the event and its tiers; DuplicateKey("id") when the id exists."""

    async def get(self, event_id: str, *, include_deleted: bool = False) -> Event | None: ...
    async def find(self, query: EventQuery) -> list[Event]: ...

    async def update(
        self,
        event_id: str,
        *,
        expected_version: int | None,
        fields: dict[str, Any],
        tiers: Sequence[TierPatch],
        now: datetime,
        actor: Actor,
    ) -> Event:
        """Apply a partial update; Missing, VersionMismatch, CapacityBelowActive."""

    async def transition(
        self,
        event_id: str,
        allowed_from: Sequence[EventStatus],
        to: EventStatus,
        now: datetime,
        actor: Actor,
    ) -> Event:
        """Move the status; Missing, InvalidTransition. The tiers are closed before anything
        else changes (`cancelled` then releases every booking, and the counters are derived
        from what remains), so no booking can slip in between."""

    async def soft_delete(self, event_id: str, now: datetime, actor: Actor) -> None:
        """Hide the event; Missing, HasActiveBookings (the tiers stay on sale then)."""

    async def availability(self, event_id: str, now: datetime) -> list[TierCount]:
        """Seats per tier computed from bookings (capacity − confirmed − unexpired pending)."""


class BookingStore(Protocol):
    """Every change also records its Change (booking.created, .confirmed, .cancelled,
    .expired) in the same atomic step."""

    async def reserve(self, request: ReserveRequest) -> Reservation:
        """Check seats and the buyer's limits and write the booking as one atomic step.

        Refused (NoSuchTier, NotOnSale, SoldOut, BuyerLimit) when it cannot be made; expired
        holds of the tier are released before a refusal is final. When the owner already
        used the idempotency key, the stored booking comes back as `replayed`: the durable
        backstop against double booking. A key that made an order is KeyClaimed (one key space
        per caller), nothing written.
        """

    async def confirm(self, booking_id: str, owner_id: str, now: datetime, actor: Actor) -> Booking:
        """pending → confirmed; Missing (absent or not the owner's), BookingExpired, NotPending,
        NotOnSale (the event has started: a confirmation is a sale, checked in the same step)."""

    async def cancel(
        self, booking_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Booking:
        """Active → cancelled, seats released; Missing, NotPending(current) if not cancellable."""

    async def get(self, booking_id: str) -> Booking | None: ...
    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None: ...
    async def key_kind(self, owner_id: str, key: str) -> str | None:
        """What the caller's Idempotency-Key made ("booking", "order"); None if nothing."""

    async def find(self, query: BookingQuery) -> list[Booking]: ...
    async def count_active(self, event_id: str, now: datetime) -> int: ...

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        """Mark pending holds past expiry `expired` and give their seats back; returns how many."""

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        """Compare every counter (tier seats, buyers' active and pending seats) with the
        bookings it counts. Without `fix` this only reads; with it, expired holds are released
        and every drifting counter is set to what the bookings say."""


class OrderStore(Protocol):
    """Every change also records its Change (order.created, .confirmed, .cancelled, .expired,
    and booking.* for each of its bookings) in the same atomic step."""

    async def reserve(self, request: OrderRequest) -> Ordered:
        """Take the seats of every item and write the order and its bookings as one atomic step,
        tiers locked in a fixed order (no deadlocks); nothing is written if anything is refused:
        NoSuchTier, NotOnSale, ItemsShort (every short tier), BuyerLimit (the order's seats
        count together). The owner's key already used: the stored order, `replayed`; used by a
        booking: KeyClaimed, nothing written."""

    async def confirm(self, order_id: str, owner_id: str, now: datetime, actor: Actor) -> Order:
        """pending → confirmed, with all its bookings; Missing, BookingExpired, NotPending."""

    async def cancel(
        self, order_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Order:
        """Active → cancelled with all its bookings, seats released; Missing, NotPending."""

    async def get(self, order_id: str) -> Order | None: ...
    async def key_kind(self, owner_id: str, key: str) -> str | None:
        """As BookingStore.key_kind."""

    async def find(self, query: OrderQuery) -> list[Order]: ...


class ChangeStore(Protocol):
    """The change log (transactional outbox): appended by the other stores, read here."""

    async def find(self, query: ChangeQuery) -> list[Change]:
        """Newest first."""

    async def undispatched(self, limit: int) -> list[Change]:
        """The oldest changes not yet handed to the dispatcher, oldest first."""

    async def note(self, change: Change) -> None:
        """Append a change for the activity log alone: it is written as already dispatched,
        so no consumer (webhooks, live availability) is handed it."""

    async def mark_dispatched(self, change_ids: Sequence[str], now: datetime) -> None: ...

    async def prune(self, before: datetime) -> int:
        """Delete changes older than `before`; how many."""

    async def hold_lease(self, name: str, holder: str, until: datetime, now: datetime) -> bool:
        """Take or renew the lease `name` for `holder` until `until`, if it is free, expired
        or already theirs: one dispatcher at a time across workers and instances."""


class WebhookStore(Protocol):
    """Webhook endpoints and their deliveries."""

    async def create(self, webhook: Webhook) -> Webhook: ...
    async def get(self, webhook_id: str) -> Webhook | None: ...

    async def find(
        self, *, owner_id: str | None, after_id: str | None, limit: int
    ) -> list[Webhook]:
        """Oldest first; one owner's, or everyone's (None)."""

    async def enabled(self) -> list[Webhook]:
        """Every enabled webhook (the fan-out matches each change against them)."""

    async def update(self, webhook_id: str, fields: dict[str, Any], now: datetime) -> Webhook:
        """Set fields (url, events, description, enabled, disabled_reason, secret); Missing."""

    async def delete(self, webhook_id: str) -> None:
        """The webhook and its deliveries; Missing."""

    async def note_outcome(self, webhook_id: str, ok: bool, now: datetime) -> Webhook | None:
        """A success clears `failing_since`; a failure sets it unless already set."""

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        """Insert the deliveries whose (webhook, change) is new; how many were. Safe to repeat."""

    async def claim(
        self,
        now: datetime,
        holder: str,
        until: datetime,
        limit: int,
        delivery_id: str | None = None,
    ) -> list[Delivery]:
        """Lease up to `limit` due deliveries to `holder` until `until`, atomically: pending,
        due, not leased, and the first pending one of their (webhook, subject). Nobody else
        claims them until the lease ends. `delivery_id` claims that one only (if it is due)."""

    async def settle(self, delivery_id: str, holder: str, attempt: Attempt) -> Delivery | None:
        """Record an attempt and release the lease, if `holder` still holds it (else None).
        A mail sent (`succeeded`) keeps no params: a reset link must not outlive its sending."""

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def deliveries(
        self, webhook_id: str, *, before_id: str | None, limit: int
    ) -> list[Delivery]:
        """Newest first."""

    async def retry(
        self, webhook_id: str, delivery_id: str, now: datetime, retry_until: datetime
    ) -> Delivery:
        """A delivery that is not pending becomes pending again, due now; Missing,
        NotPending-like InvalidTransition("pending") when it is pending already."""


class MailStore(Protocol):
    """The mail outbox (modules/notifications sends it)."""

    async def enqueue(self, mails: Sequence[Mail]) -> int:
        """Insert the mails whose id is new; how many were. Safe to repeat."""

    async def claim(self, now: datetime, holder: str, until: datetime, limit: int) -> list[Mail]:
        """Lease up to `limit` due pending mails to `holder` until `until`, atomically: nobody
        else claims them until the lease ends (a sender killed mid-send: then they are due)."""

    async def settle(self, mail_id: str, holder: str, attempt: Attempt) -> Mail | None:
        """Record an attempt and release the lease, if `holder` still holds it (else None)."""

    async def get(self, mail_id: str) -> Mail | None: ...

    async def find(self, *, status: str | None, before_id: str | None, limit: int) -> list[Mail]:
        """Newest first; of one status or all."""


class ResetStore(Protocol):
    """Password-reset tokens (hashed) and the mail that carries each."""

    async def issue(self, token: ResetToken, mail: Mail) -> None:
        """Store the token (replacing the account's live one) and enqueue its mail, in one
        atomic step."""

    async def reset(
        self, token_hash: str, password_hash: str, now: datetime
    ) -> tuple[SpendOutcome, User | None]:
        """Spend the token whose hash this is and, if it was live, set the account's password
        and end every session of it (token version bumped, refresh tokens revoked): all in one
        atomic step, so a token is never spent without its password set, nor used twice.
        ("ok", the account after); ("spent", None) if it had expired (it is gone now, nothing
        else changed); ("unknown", None) if there is none (never issued, used, replaced) or
        its account is gone."""


class EmailCodeStore(Protocol):
    """Email codes (salted hashes, one live per account and purpose) and their mail."""

    async def issue(self, code: EmailCode, mail: Mail) -> None:
        """Store the code (replacing the account's live one of its purpose) and enqueue its
        mail, in one atomic step."""

    async def attempt(self, email: str, now: datetime, max_attempts: int) -> list[EmailCode]:
        """Count one attempt against every unexpired code sent to `email` with attempts left
        (each below `max_attempts`, atomically per code: racing guesses never get more than
        `max_attempts` in all) and return those codes, their attempt counted."""

    async def find(self, email: str) -> list[EmailCode]:
        """Every code sent to `email`, live or not (to say why an attempt found none)."""

    async def use(self, code: EmailCode, now: datetime, mail: Mail | None) -> User | None:
        """Spend `code` and apply it in one atomic step. `verify`: the account's address is
        verified, if it still is `code.email`. `change`: the account moves to `code.email`,
        verified, and `mail` (telling the old address) is enqueued.
        The account after; None if the code was spent or replaced meanwhile (nothing
        changed); DuplicateKey if another account took the address meanwhile (nothing
        changed)."""


class CheckinStore(Protocol):
    """Tickets at the door: signing keys, check-in lists, scanners, and redemptions, each
    recorded once by a unique key (never read-then-write)."""

    async def add_key(self, key: SigningKey) -> SigningKey:
        """DuplicateKey("kid") when the event has a key with that kid."""

    async def keys(self, event_id: str) -> list[SigningKey]:
        """The event's keys, oldest first (the last one signs)."""

    async def remove_key(self, event_id: str, kid: str) -> None:
        """Missing when there is no such key."""

    async def create_list(self, checkin_list: CheckinList) -> CheckinList: ...
    async def get_list(self, list_id: str) -> CheckinList | None: ...

    async def lists(self, event_id: str) -> list[CheckinList]:
        """Oldest first."""

    async def create_scanner(self, scanner: Scanner) -> Scanner: ...
    async def scanner_by_token(self, token_hash: str) -> Scanner | None: ...
    async def get_scanner(self, scanner_id: str) -> Scanner | None: ...

    async def scanners(self, event_id: str) -> list[Scanner]:
        """Oldest first, revoked ones too."""

    async def revoke_scanner(self, scanner_id: str, now: datetime) -> Scanner:
        """Its token admits nothing from now on (revoking twice keeps the first time); Missing."""

    async def redeem(self, scan: Scan) -> ScanAnswer:
        """Answer a scan once per (scanner, nonce): a nonce answered before gets that answer
        back (`replayed`), whatever this scan says. Else a scan not `refused` is recorded, by
        a unique key: an entry is the ticket's n-th on the list (n = its exits there so far)
        and only one scan can be it (`ok`, the others `already_used`); an exit follows the
        last entry not yet followed (`ok`) or there is none (`already_used`)."""

    async def entries(
        self,
        event_id: str,
        *,
        list_id: str | None = None,
        ticket_ids: Sequence[str] | None = None,
    ) -> dict[str, datetime]:
        """When each ticket of the event (of those, through that list) first entered."""

    async def counts(self, event_id: str) -> list[DoorCount]:
        """Tickets let in at least once, per list and tier, then per tier through any list
        (`list_id` None: a ticket let in through two lists counts once there)."""


class WaitlistStore(Protocol):
    """Waiting lists. Freed seats are offered by the step that frees them (a cancel, an
    expiry, capacity raised, an offer or a code's hold ended), in that step: the tier's
    earliest waiting entries that fit get `offered`, their seats blocked (tier `blocked`) and
    a `waitlist.offered` change recorded."""

    async def join(self, entry: WaitlistEntry) -> WaitlistEntry:
        """Add the entry at the end of its tier's list, only while the tier lacks the seats
        asked for, in one atomic step with the tier; NoSuchTier (hidden ones too), NotOnSale,
        WaitlistClosed, SeatsAvailable, DuplicateKey("waitlist_entry") (one live entry per
        account and tier)."""

    async def get(self, entry_id: str) -> WaitlistEntry | None: ...

    async def find(
        self,
        *,
        owner_id: str | None = None,
        event_id: str | None = None,
        tier: str | None = None,
        live_only: bool = False,
        limit: int = 100,
    ) -> list[WaitlistEntry]:
        """In list order (oldest first)."""

    async def position(self, entry: WaitlistEntry) -> int:
        """1 + the entries waiting ahead of it."""

    async def leave(self, entry_id: str, owner_id: str, now: datetime) -> WaitlistEntry:
        """A waiting or offered entry of the owner's ends (`left`); an offer's seats go to the
        next entries in the same step; Missing."""

    async def expire(self, now: datetime) -> int:
        """End offers past their expiry and the holds of codes past their validity, their
        seats passed on in the same step; how many ended."""


class CodeStore(Protocol):
    """Access codes. A use is counted in the atomic step of the booking that uses it (see
    BookingStore.reserve with `access_code`) and given back in that of its release."""

    async def create(self, code: AccessCode, now: datetime) -> AccessCode:
        """Insert; a holding code blocks `max_uses` free seats of its tier in the same step
        (CapacityBelowActive when the tier lacks them); DuplicateKey("access_code")."""

    async def get(self, event_id: str, code_id: str) -> AccessCode | None: ...
    async def find(self, event_id: str) -> list[AccessCode]: ...

    async def update(
        self, event_id: str, code_id: str, patch: CodePatch, now: datetime
    ) -> AccessCode:
        """Apply the patch; the code's hold follows in the same step (disabled or expired:
        released and passed on; more uses: more seats blocked, or CapacityBelowActive);
        CapacityBelowActive("maxUses") below the uses made; Missing."""


class Storage(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def users(self) -> UserStore: ...
    @property
    def partners(self) -> PartnerStore: ...
    @property
    def tokens(self) -> TokenStore: ...
    @property
    def events(self) -> EventStore: ...
    @property
    def bookings(self) -> BookingStore: ...
    @property
    def orders(self) -> OrderStore: ...
    @property
    def changes(self) -> ChangeStore: ...
    @property
    def webhooks(self) -> WebhookStore: ...
    @property
    def mail(self) -> MailStore: ...
    @property
    def resets(self) -> ResetStore: ...
    @property
    def checkin(self) -> CheckinStore: ...
    @property
    def email_codes(self) -> EmailCodeStore: ...
    @property
    def waitlist(self) -> WaitlistStore: ...
    @property
    def codes(self) -> CodeStore: ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...
