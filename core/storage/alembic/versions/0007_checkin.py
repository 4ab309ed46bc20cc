"""Signed tickets and check-in: signing keys, lists, scanners, redemptions, answers.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "checkin_keys",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("kid", sa.String(32), primary_key=True),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("public_x", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
    )
    op.create_table(
        "checkin_lists",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tiers", JSON, nullable=False),
        sa.Column("opens_at", UTC_TS),
        sa.Column("created_at", UTC_TS, nullable=False),
    )
    op.create_index("ix_checkin_lists_event", "checkin_lists", ["event_id", "id"])
    op.create_table(
        "scanners",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("revoked_at", UTC_TS),
    )
    op.create_index("ix_scanners_event", "scanners", ["event_id", "id"])
    op.create_table(
        "checkin_redemptions",
        sa.Column("list_id", sa.String(32), primary_key=True),
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(8), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("scanner_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("scanned_at", UTC_TS, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
    )
    op.create_index("ix_redemptions_event", "checkin_redemptions", ["event_id", "ticket_id"])
    op.create_table(
        "checkin_answers",
        sa.Column("scanner_id", sa.String(32), primary_key=True),
        sa.Column("nonce", sa.String(128), primary_key=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("ticket", JSON),
        sa.Column("scanned_at", UTC_TS, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkin_answers")
    op.drop_table("checkin_redemptions")
    op.drop_table("scanners")
    op.drop_table("checkin_lists")
    op.drop_table("checkin_keys")
