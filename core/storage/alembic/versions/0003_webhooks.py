"""Webhook endpoints and their deliveries.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("owner_role", sa.String(16), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", JSON, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("description", sa.String(500)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(500)),
        sa.Column("failing_since", UTC_TS),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
    )
    op.create_index("ix_webhooks_owner", "webhooks", ["owner_id", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("webhook_id", sa.String(32), nullable=False),
        sa.Column("change_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTC_TS, nullable=False),
        sa.Column("retry_until", UTC_TS, nullable=False),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_latency_ms", sa.Integer),
        sa.Column("last_error", sa.String(500)),
        sa.Column("last_attempt_at", UTC_TS),
        sa.Column("lease_holder", sa.String(64)),
        sa.Column("lease_until", UTC_TS),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.UniqueConstraint("webhook_id", "change_id", name="uq_deliveries_webhook_change"),
    )
    op.create_index("ix_deliveries_webhook", "webhook_deliveries", ["webhook_id", "id"])
    op.create_index(
        "ix_deliveries_subject", "webhook_deliveries", ["webhook_id", "subject_id", "seq"]
    )
    pending = sa.text("status = 'pending'")
    op.create_index(
        "ix_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=pending,
        sqlite_where=pending,
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
