"""Waiting lists and access codes: blocked seats, hidden tiers, entries, codes, code uses.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tiers") as tiers:
        tiers.add_column(sa.Column("blocked", sa.Integer, nullable=False, server_default="0"))
        tiers.add_column(
            sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.text("false"))
        )
        tiers.add_column(
            sa.Column("waitlist_open", sa.Boolean, nullable=False, server_default=sa.text("true"))
        )
        tiers.add_column(sa.Column("waitlist_seq", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("offer_seconds", sa.Integer, nullable=False),
        sa.Column("offer_expires_at", UTC_TS),
        sa.Column("booking_id", sa.String(32)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.Column("live_key", sa.String(200), unique=True),
    )
    op.create_index(
        "ix_waitlist_tier_status_seq", "waitlist_entries", ["event_id", "tier", "status", "seq"]
    )
    op.create_index("ix_waitlist_owner", "waitlist_entries", ["owner_id", "id"])
    op.create_index("ix_waitlist_offer_expiry", "waitlist_entries", ["status", "offer_expires_at"])
    op.create_table(
        "access_codes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("tiers", JSON, nullable=False),
        sa.Column("valid_from", UTC_TS),
        sa.Column("valid_until", UTC_TS),
        sa.Column("reserve_seats", sa.Boolean, nullable=False),
        sa.Column("holding", sa.Boolean, nullable=False),
        sa.Column("discount_percent", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.UniqueConstraint("event_id", "code", name="uq_access_codes_event_code"),
        sa.CheckConstraint("uses >= 0 AND uses <= max_uses", name="ck_access_codes_uses"),
    )
    op.create_table(
        "code_uses",
        sa.Column("booking_id", sa.String(32), primary_key=True),
        sa.Column("code_id", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("code_uses")
    op.drop_table("access_codes")
    op.drop_table("waitlist_entries")
    with op.batch_alter_table("tiers") as tiers:
        for name in ("waitlist_seq", "waitlist_open", "hidden", "blocked"):
            tiers.drop_column(name)
