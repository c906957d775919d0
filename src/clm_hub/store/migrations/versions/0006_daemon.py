"""daemon: webhook deliveries already ingested, for de-duplication by event id

Revision ID: 0006
Revises: 0002 (the stage engine)
Create Date: 2026-11-23 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clm_hub.store.types

revision: str = "0006"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_delivery",
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "event_id", name=op.f("pk_webhook_delivery")),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_delivery_received_at"), ["received_at"])


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_received_at"))
    op.drop_table("webhook_delivery")
