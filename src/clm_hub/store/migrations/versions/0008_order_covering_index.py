"""stage engine: covering index on customer_order for the per-customer feature pass

Revision ID: 0008
Revises: 0007 (run kind)
Create Date: 2026-11-23 12:30:00

Numbered 0008 because 0007 (run kind) landed while this was written; the two touch different
tables.

Replaces ix_customer_order_customer_id_placed_at with an index on the same two leading columns
plus every column the stage engine reads (status, currency, total, refunded, deleted_at). The
feature SQL then reads orders in (customer, time) order from the index alone: no table look-ups
and no sort on SQLite. Any query the old index served, the new one serves too, so order writes
keep maintaining one index, not two.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERING = ["customer_id", "placed_at", "status", "currency", "total", "refunded", "deleted_at"]


def upgrade() -> None:
    with op.batch_alter_table("customer_order", schema=None) as batch_op:
        batch_op.create_index("ix_customer_order_customer_id_placed_at_covering", COVERING)
        batch_op.drop_index("ix_customer_order_customer_id_placed_at")


def downgrade() -> None:
    with op.batch_alter_table("customer_order", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_order_customer_id_placed_at", ["customer_id", "placed_at"], unique=False
        )
        batch_op.drop_index("ix_customer_order_customer_id_placed_at_covering")
