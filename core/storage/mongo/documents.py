"""The collections and their indexes, declared as Beanie documents and created by
`init_beanie` at start-up. Only the indexes are declared here: documents are read and
written with PyMongo directly (see base.py for why)."""

from __future__ import annotations

from beanie import Document
from pymongo import ASCENDING, DESCENDING, IndexModel


class UserDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "users"
        indexes = [IndexModel([("email", ASCENDING)], unique=True)]


class PartnerDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "partners"
        indexes = [IndexModel([("client_id", ASCENDING)], unique=True)]


class RefreshTokenDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "refresh_tokens"
        indexes = [IndexModel([("family_id", ASCENDING)])]


class EventDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "events"
        indexes = [
            IndexModel([("status", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("owner_id", ASCENDING)]),
            IndexModel([("name", "text"), ("venue", "text")], weights={"name": 2, "venue": 1}),
        ]


class TierDoc(Document):
    """One document per tier (`<event id>/<code>`) so its seat counter can be updated
    conditionally on its own."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "tiers"
        indexes = [IndexModel([("event_id", ASCENDING), ("position", ASCENDING)])]


class BookingDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "bookings"
        indexes = [
            IndexModel([("ticket_number", ASCENDING)], unique=True),
            IndexModel(
                [("owner_id", ASCENDING), ("idempotency_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
            ),
            IndexModel([("event_id", ASCENDING), ("tier", ASCENDING), ("status", ASCENDING)]),
            IndexModel([("owner_id", ASCENDING), ("_id", DESCENDING)]),
            IndexModel([("status", ASCENDING), ("expires_at", ASCENDING)]),
            IndexModel([("order_id", ASCENDING)], sparse=True),
        ]


class OrderDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "orders"
        indexes = [
            IndexModel(
                [("owner_id", ASCENDING), ("idempotency_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
            ),
            IndexModel([("owner_id", ASCENDING), ("_id", DESCENDING)]),
        ]


class KeyClaimDoc(Document):
    """One Idempotency-Key space per caller: a key's one claim, whatever it made (`kind`, a
    booking or an order, and its `resource_id`), inserted in the transaction that made it."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "idempotency_keys"
        indexes = [IndexModel([("owner_id", ASCENDING), ("key", ASCENDING)], unique=True)]


class BuyerCountDoc(Document):
    """Per buyer and event (`<event id>/<owner id>`): seats in pending or confirmed bookings
    (`active`) and of those the pending ones."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "user_event_counts"
        indexes = [IndexModel([("event_id", ASCENDING)])]


class ChangeDoc(Document):
    """The change log (transactional outbox); see `core.storage.records.Change`."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "changes"
        indexes = [
            IndexModel([("event_id", ASCENDING), ("_id", DESCENDING)]),
            IndexModel([("subject_id", ASCENDING), ("seq", ASCENDING)]),
            IndexModel([("dispatched_at", ASCENDING), ("_id", ASCENDING)]),
        ]


class LeaseDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "leases"


class WebhookDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "webhooks"
        indexes = [
            IndexModel([("owner_id", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("enabled", ASCENDING)]),
        ]


class DeliveryDoc(Document):
    """One change record for one webhook: unique per (webhook, change)."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "webhook_deliveries"
        indexes = [
            IndexModel([("webhook_id", ASCENDING), ("change_id", ASCENDING)], unique=True),
            IndexModel([("webhook_id", ASCENDING), ("_id", DESCENDING)]),
            IndexModel([("webhook_id", ASCENDING), ("subject_id", ASCENDING), ("seq", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
        ]


class MailDoc(Document):
    """One message of the mail outbox; its id derived from its cause."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "mail"
        indexes = [
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("_id", DESCENDING)]),
        ]


class ResetDoc(Document):
    """One live password-reset token per account (its id), by its SHA-256 only."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "password_resets"
        indexes = [IndexModel([("token_hash", ASCENDING)], unique=True)]


class SigningKeyDoc(Document):
    """An event's ticket-signing key; its id is `<event id>:<kid>`."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "checkin_keys"
        indexes = [IndexModel([("event_id", ASCENDING), ("created_at", ASCENDING)])]


class CheckinListDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "checkin_lists"
        indexes = [IndexModel([("event_id", ASCENDING), ("_id", ASCENDING)])]


class ScannerDoc(Document):
    id: str  # type: ignore[assignment]

    class Settings:
        name = "scanners"
        indexes = [
            IndexModel([("token_hash", ASCENDING)], unique=True),
            IndexModel([("event_id", ASCENDING), ("_id", ASCENDING)]),
        ]


class RedemptionDoc(Document):
    """A ticket's n-th entry (or exit) through a list; its id `<list>|<ticket>|<type>|<n>`
    admits it once."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "checkin_redemptions"
        indexes = [
            IndexModel([("list_id", ASCENDING), ("ticket_id", ASCENDING)]),
            IndexModel([("event_id", ASCENDING), ("type", ASCENDING), ("ticket_id", ASCENDING)]),
        ]


class ScanAnswerDoc(Document):
    """The answer given to a scan; its id `<scanner>|<nonce>`."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "checkin_answers"


class EmailCodeDoc(Document):
    """One live email code per account and purpose (`<user>/<purpose>`), its hash only."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "email_codes"
        indexes = [IndexModel([("email", ASCENDING)])]


class WaitlistDoc(Document):
    """An account waiting for seats of a tier; `live_key` (event/tier/owner) is set while
    the entry waits or holds an offer: one live entry per account and tier."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "waitlist_entries"
        indexes = [
            IndexModel(
                [("live_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"live_key": {"$type": "string"}},
            ),
            IndexModel(
                [("event_id", ASCENDING), ("tier", ASCENDING), ("status", ASCENDING), ("seq", 1)]
            ),
            IndexModel([("owner_id", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("offer_expires_at", ASCENDING)]),
        ]


class AccessCodeDoc(Document):
    """An organizer's access code, unique per event; `uses` changes with its bookings."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "access_codes"
        indexes = [IndexModel([("event_id", ASCENDING), ("code", ASCENDING)], unique=True)]


class CodeUseDoc(Document):
    """Which booking (its id) used which code."""

    id: str  # type: ignore[assignment]

    class Settings:
        name = "code_uses"


DOCUMENTS: list[type[Document]] = [
    UserDoc,
    PartnerDoc,
    RefreshTokenDoc,
    EventDoc,
    TierDoc,
    BookingDoc,
    OrderDoc,
    KeyClaimDoc,
    BuyerCountDoc,
    ChangeDoc,
    LeaseDoc,
    WebhookDoc,
    DeliveryDoc,
    MailDoc,
    ResetDoc,
    SigningKeyDoc,
    CheckinListDoc,
    ScannerDoc,
    RedemptionDoc,
    ScanAnswerDoc,
    EmailCodeDoc,
    WaitlistDoc,
    AccessCodeDoc,
    CodeUseDoc,
]
