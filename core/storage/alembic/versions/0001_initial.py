"""Initial schema: users, partners, refresh tokens, events, tiers, bookings, full-text search.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
    )
    op.create_table(
        "partners",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(64), nullable=False, index=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=False),
        sa.Column("spent_at", UTC_TS),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("venue", sa.String(200), nullable=False),
        sa.Column("starts_at", UTC_TS, nullable=False, index=True),
        sa.Column("ends_at", UTC_TS),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("max_per_user", sa.Integer),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted_at", UTC_TS),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
    )
    op.create_table(
        "tiers",
        sa.Column("event_id", sa.String(64), sa.ForeignKey("events.id"), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("price_cents", sa.Integer, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("active", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("on_sale", sa.Boolean, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.CheckConstraint("active >= 0 AND active <= capacity", name="ck_tiers_seats"),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("ticket_number", sa.String(32), nullable=False, unique=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price_cents", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", UTC_TS),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.String(64)),
        sa.Column("external_ref", sa.String(255)),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_bookings_owner_key"),
    )
    op.create_index("ix_bookings_event_tier_status", "bookings", ["event_id", "tier", "status"])
    op.create_index("ix_bookings_owner", "bookings", ["owner_id", "id"])
    op.create_index("ix_bookings_pending_expiry", "bookings", ["status", "expires_at"])
    op.create_table(
        "user_event_counts",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), primary_key=True),
        sa.Column("active", sa.Integer, nullable=False),
    )
    _full_text_search()


def _full_text_search() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_events_search ON events "
            "USING gin (to_tsvector('english', name || ' ' || venue))"
        )
        return
    op.execute("CREATE VIRTUAL TABLE events_fts USING fts5(event_id UNINDEXED, name, venue)")
    op.execute(
        "CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN "
        "INSERT INTO events_fts(event_id, name, venue) VALUES (new.id, new.name, new.venue); END"
    )
    op.execute(
        "CREATE TRIGGER events_fts_update AFTER UPDATE OF name, venue ON events BEGIN "
        "UPDATE events_fts SET name = new.name, venue = new.venue WHERE event_id = new.id; END"
    )


def downgrade() -> None:
    for table in ("user_event_counts", "bookings", "tiers", "events", "refresh_tokens"):
        op.drop_table(table)
    op.drop_table("partners")
    op.drop_table("users")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS events_fts")
