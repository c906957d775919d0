"""write-back state per tool record; push counters in run history

push_state becomes keyed by (connector, external_id): a person can have two records in
one tool, and merging customers then only re-points customer_id. No release wrote
push_state before this revision, so the table is recreated rather than altered (primary
key changes are not portable across SQLite and PostgreSQL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import clm_hub.store.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PUSH_COUNTERS = ("planned", "sent", "confirmed", "failed", "batches")


def upgrade() -> None:
    op.drop_table("push_state")
    op.create_table(
        "push_state",
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("pushed_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempted_digest", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("gave_up_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_push_state_customer_id_customer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("connector", "external_id", name=op.f("pk_push_state")),
    )
    with op.batch_alter_table("push_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_push_state_customer_id"), ["customer_id"])
        batch_op.create_index(batch_op.f("ix_push_state_next_attempt_at"), ["next_attempt_at"])
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        for name in PUSH_COUNTERS:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        for name in reversed(PUSH_COUNTERS):
            batch_op.drop_column(name)
    op.drop_table("push_state")
    op.create_table(
        "push_state",
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("pushed_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_push_state_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connector", "customer_id", name=op.f("pk_push_state")),
    )
    with op.batch_alter_table("push_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_push_state_next_attempt_at"), ["next_attempt_at"])
