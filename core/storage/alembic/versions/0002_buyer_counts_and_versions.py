"""Buyer counts for every booking (and their pending seats), token and booking versions,
orders, the change log (transactional outbox) and leases.

Before this revision a buyer's count was kept only while the event had a limit; it is now
kept for every booking, so it is rebuilt here from the bookings themselves.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    for table in ("users", "partners"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("token_version", sa.Integer, nullable=False, server_default="0")
            )
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("order_id", sa.String(32)))
        batch.create_index("ix_bookings_order", ["order_id"])
    op.create_table(
        "orders",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", UTC_TS),
        sa.Column("partner_id", sa.String(64)),
        sa.Column("external_ref", sa.String(255)),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_orders_owner_key"),
    )
    op.create_index("ix_orders_owner", "orders", ["owner_id", "id"])
    with op.batch_alter_table("user_event_counts") as batch:
        batch.add_column(sa.Column("pending", sa.Integer, nullable=False, server_default="0"))
    op.execute("DELETE FROM user_event_counts")
    op.execute(
        "INSERT INTO user_event_counts (event_id, owner_id, active, pending) "
        "SELECT event_id, owner_id, SUM(quantity), "
        "SUM(CASE WHEN status = 'pending' THEN quantity ELSE 0 END) FROM bookings "
        "WHERE status IN ('pending', 'confirmed') GROUP BY event_id, owner_id"
    )
    with op.batch_alter_table("user_event_counts") as batch:
        batch.create_check_constraint("ck_buyer_seats", "pending >= 0 AND pending <= active")
    _change_log()


def _change_log() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("occurred_at", UTC_TS, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.String(32)),
        sa.Column("order_id", sa.String(32)),
        sa.Column("owner_id", sa.String(64)),
        sa.Column("partner_id", sa.String(64)),
        sa.Column("data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("dispatched_at", UTC_TS),
    )
    op.create_index("ix_changes_event", "changes", ["event_id", "id"])
    op.create_index("ix_changes_subject", "changes", ["subject_id", "seq"])
    undispatched = sa.text("dispatched_at IS NULL")
    op.create_index(
        "ix_changes_undispatched",
        "changes",
        ["id"],
        postgresql_where=undispatched,
        sqlite_where=undispatched,
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("until", UTC_TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("changes")
    op.drop_table("orders")
    with op.batch_alter_table("user_event_counts") as batch:
        batch.drop_constraint("ck_buyer_seats", type_="check")
        batch.drop_column("pending")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_index("ix_bookings_order")
        batch.drop_column("order_id")
        batch.drop_column("version")
    for table in ("users", "partners"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("token_version")
