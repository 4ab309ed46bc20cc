"""One Idempotency-Key space per caller: the claims table, backfilled from bookings and orders.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# A key the server made itself (`auto:<id>`, when no Idempotency-Key was sent) is no claim.
# Orders first: a key already used by both (the hole this closes) stays the order's.
BACKFILL = (
    "INSERT INTO idempotency_keys (owner_id, key, kind, resource_id, created_at) "
    "SELECT owner_id, idempotency_key, '{kind}', id, created_at FROM {table} "
    "WHERE idempotency_key IS NOT NULL AND idempotency_key NOT LIKE 'auto:%' "
    "ON CONFLICT DO NOTHING"
)


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("owner_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(BACKFILL.format(kind="order", table="orders"))
    op.execute(BACKFILL.format(kind="booking", table="bookings"))


def downgrade() -> None:
    op.drop_table("idempotency_keys")
