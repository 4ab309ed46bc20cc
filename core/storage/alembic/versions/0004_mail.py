"""The mail outbox and password-reset tokens.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "mail",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("template", sa.String(40), nullable=False),
        sa.Column("to", sa.String(320), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTC_TS, nullable=False),
        sa.Column("retry_until", UTC_TS, nullable=False),
        sa.Column("last_error", sa.String(500)),
        sa.Column("last_attempt_at", UTC_TS),
        sa.Column("lease_holder", sa.String(64)),
        sa.Column("lease_until", UTC_TS),
        sa.Column("created_at", UTC_TS, nullable=False),
    )
    pending = sa.text("status = 'pending'")
    op.create_index(
        "ix_mail_due", "mail", ["next_attempt_at"], postgresql_where=pending, sqlite_where=pending
    )
    op.create_table(
        "password_resets",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("expires_at", UTC_TS, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("password_resets")
    op.drop_table("mail")
