"""sync engine run counters

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22 21:29:34.164687
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_updated_at"), ["updated_at"], unique=False)

    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("suppressed", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:

    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.drop_column("suppressed")

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_updated_at"))
