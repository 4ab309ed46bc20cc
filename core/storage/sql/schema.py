"""SQLAlchemy Core tables shared by SQLite and PostgreSQL.

Migrations (core/storage/alembic) must produce exactly these tables: a test compares the
migrated database with this metadata, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import JSON, TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on both dialects (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware: datetime = (
            value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        )
        return aware


metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("token_version", Integer, nullable=False, server_default="0"),
    Column("email_verified_at", UTCDateTime),
)

partners = Table(
    "partners",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("token_version", Integer, nullable=False, server_default="0"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False, index=True),
    Column("user_id", String(32), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("spent_at", UTCDateTime),
    Column("revoked", Boolean, nullable=False, default=False),
)

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("venue", String(200), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False, index=True),
    Column("ends_at", UTCDateTime),
    Column("status", String(16), nullable=False, index=True),
    Column("max_per_user", Integer),
    Column("queue", JSON().with_variant(JSONB(), "postgresql")),
    Column("version", Integer, nullable=False, default=1),
    Column("deleted_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

tiers = Table(
    "tiers",
    metadata,
    Column("event_id", String(64), ForeignKey("events.id"), primary_key=True),
    Column("code", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("active", Integer, nullable=False, default=0),
    Column("version", Integer, nullable=False, default=0),
    Column("on_sale", Boolean, nullable=False, default=False),
    Column("position", Integer, nullable=False, default=0),
    Column("blocked", Integer, nullable=False, server_default="0"),
    Column("hidden", Boolean, nullable=False, server_default=text("false")),
    Column("waitlist_open", Boolean, nullable=False, server_default=text("true")),
    Column("waitlist_seq", Integer, nullable=False, server_default="0"),
    CheckConstraint("active >= 0 AND active <= capacity", name="ck_tiers_seats"),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("ticket_number", String(32), nullable=False, unique=True),
    Column("event_id", String(64), nullable=False),
    Column("tier", String(32), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", UTCDateTime),
    Column("owner_id", String(64), nullable=False),
    Column("partner_id", String(64)),
    Column("external_ref", String(255)),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("order_id", String(32)),
    UniqueConstraint("owner_id", "idempotency_key", name="uq_bookings_owner_key"),
    Index("ix_bookings_order", "order_id"),
    Index("ix_bookings_event_tier_status", "event_id", "tier", "status"),
    Index("ix_bookings_owner", "owner_id", "id"),
    Index("ix_bookings_pending_expiry", "status", "expires_at"),
)

user_event_counts = Table(
    "user_event_counts",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("owner_id", String(64), primary_key=True),
    Column("active", Integer, nullable=False),
    Column("pending", Integer, nullable=False, server_default="0"),
    CheckConstraint("pending >= 0 AND pending <= active", name="ck_buyer_seats"),
)
"""Per buyer and event: seats in pending or confirmed bookings (`active`) and of those the
pending ones, changed in the same atomic step as the bookings (`maxPerUser`, the hold cap)."""

orders = Table(
    "orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("owner_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", UTCDateTime),
    Column("partner_id", String(64)),
    Column("external_ref", String(255)),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner_id", "idempotency_key", name="uq_orders_owner_key"),
    Index("ix_orders_owner", "owner_id", "id"),
)
"""Several tiers booked together, all or nothing: one booking per item carries `order_id`;
the order's status moves with its bookings'."""

changes = Table(
    "changes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("type", String(40), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("subject", String(16), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("booking_id", String(32)),
    Column("order_id", String(32)),
    Column("owner_id", String(64)),
    Column("partner_id", String(64)),
    Column("data", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("dispatched_at", UTCDateTime),
    Index("ix_changes_event", "event_id", "id"),
    Index("ix_changes_subject", "subject_id", "seq"),
    Index(
        "ix_changes_undispatched",
        "id",
        postgresql_where=text("dispatched_at IS NULL"),
        sqlite_where=text("dispatched_at IS NULL"),
    ),
)
"""The change log (transactional outbox): written in the atomic step of every change of a
booking, an order or an event; the activity log, webhooks and live availability read it."""

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("until", UTCDateTime, nullable=False),
)
"""Who runs a singleton job (the change dispatcher) until when, across processes."""

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("owner_role", String(16), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("description", String(500)),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(500)),
    Column("failing_since", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_webhooks_owner", "owner_id", "id"),
)
"""Endpoints that receive change records, signed with their secret (kept to sign with)."""

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("webhook_id", String(32), nullable=False),
    Column("change_id", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("payload", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("retry_until", UTCDateTime, nullable=False),
    Column("last_status_code", Integer),
    Column("last_latency_ms", Integer),
    Column("last_error", String(500)),
    Column("last_attempt_at", UTCDateTime),
    Column("lease_holder", String(64)),
    Column("lease_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("webhook_id", "change_id", name="uq_deliveries_webhook_change"),
    Index("ix_deliveries_webhook", "webhook_id", "id"),
    Index("ix_deliveries_subject", "webhook_id", "subject_id", "seq"),
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)
"""One change record to send to one webhook, exactly once per (webhook, change); its id is
the `webhook-id` every attempt carries."""

mail = Table(
    "mail",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("template", String(40), nullable=False),
    Column("to", String(320), nullable=False),
    Column("params", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("retry_until", UTCDateTime, nullable=False),
    Column("last_error", String(500)),
    Column("last_attempt_at", UTCDateTime),
    Column("lease_holder", String(64)),
    Column("lease_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Index(
        "ix_mail_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)
"""The mail outbox: one row per message, its id derived from its cause."""

password_resets = Table(
    "password_resets",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""One live password-reset token per account, by its SHA-256 only."""

checkin_keys = Table(
    "checkin_keys",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("kid", String(32), primary_key=True),
    Column("private_key", Text, nullable=False),
    Column("public_x", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""Each event's Ed25519 ticket-signing keys (kept to sign with, like webhook secrets)."""

checkin_lists = Table(
    "checkin_lists",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("tiers", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("opens_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_checkin_lists_event", "event_id", "id"),
)
"""The doors of an event: which tiers each admits, from when."""

scanners = Table(
    "scanners",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Index("ix_scanners_event", "event_id", "id"),
)
"""Check-in devices of one event, by the SHA-256 of their token only."""

checkin_redemptions = Table(
    "checkin_redemptions",
    metadata,
    Column("list_id", String(32), primary_key=True),
    Column("ticket_id", String(64), primary_key=True),
    Column("type", String(8), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("tier", String(64), nullable=False),
    Column("scanner_id", String(32), nullable=False),
    Column("nonce", String(128), nullable=False),
    Column("scanned_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_redemptions_event", "event_id", "ticket_id"),
)
"""A ticket's n-th entry (or exit) through a list: the primary key admits it once."""

checkin_answers = Table(
    "checkin_answers",
    metadata,
    Column("scanner_id", String(32), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("result", String(16), nullable=False),
    Column("ticket", JSON().with_variant(JSONB(), "postgresql")),
    Column("scanned_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""The answer given to each (scanner, nonce): a scan sent again gets it again."""
email_codes = Table(
    "email_codes",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("purpose", String(8), primary_key=True),
    Column("email", String(320), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    Column("salt", String(32), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""One live email code per account and purpose (verify its address, or move to a new one)."""


waitlist_entries = Table(
    "waitlist_entries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("tier", String(32), nullable=False),
    Column("owner_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("offer_seconds", Integer, nullable=False),
    Column("offer_expires_at", UTCDateTime),
    Column("booking_id", String(32)),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("live_key", String(200), unique=True),
    Index("ix_waitlist_tier_status_seq", "event_id", "tier", "status", "seq"),
    Index("ix_waitlist_owner", "owner_id", "id"),
    Index("ix_waitlist_offer_expiry", "status", "offer_expires_at"),
)
"""Accounts waiting for seats of a tier, in `seq` order. `live_key` (event, tier, owner) is
set while the entry waits or holds an offer and cleared when it ends: one live entry per
account and tier, kept by a unique index on every backend."""

access_codes = Table(
    "access_codes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False),
    Column("tiers", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("valid_from", UTCDateTime),
    Column("valid_until", UTCDateTime),
    Column("reserve_seats", Boolean, nullable=False),
    Column("holding", Boolean, nullable=False),
    Column("discount_percent", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", "code", name="uq_access_codes_event_code"),
    CheckConstraint("uses >= 0 AND uses <= max_uses", name="ck_access_codes_uses"),
)
"""An organizer's access codes; `uses` is changed in the atomic step of the booking that
uses the code (and of its cancel or expiry)."""

code_uses = Table(
    "code_uses",
    metadata,
    Column("booking_id", String(32), primary_key=True),
    Column("code_id", String(32), nullable=False),
)
"""Which booking used which code: written with the booking, removed when it stops holding
seats (so the code's use is given back in the same step)."""


idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("resource_id", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""One Idempotency-Key space per caller: the key's one claim, whatever made it (a booking or
an order), written in the atomic step that writes what it made."""
