"""Buyer counts for every booking (and their pending seats), token and booking versions.

Before this revision a buyer's count was kept only while the event had a limit; it is now
kept for every booking, so it is rebuilt here from the bookings themselves.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("users", "partners"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("token_version", sa.Integer, nullable=False, server_default="0")
            )
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
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


def downgrade() -> None:
    with op.batch_alter_table("user_event_counts") as batch:
        batch.drop_constraint("ck_buyer_seats", type_="check")
        batch.drop_column("pending")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("version")
    for table in ("users", "partners"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("token_version")
