"""stage engine: calibrations in force, purchase days per customer state

Revision ID: 0002
Revises: 0004
Create Date: 2026-11-22 22:02:51.181658

Numbered 0002 as planned for issue #4; it follows 0004 because 0003 and 0004 landed first on
0001. It touches only customer_state and the new stage_calibration table, so its place in the
chain does not matter to the others.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import clm_hub.store.types

revision: str = "0002"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stage_calibration",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("calibrated_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("rules_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("observed_from", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("cycle_days", sa.Float(), nullable=False),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("rfm_thresholds", sa.JSON(), nullable=True),
        sa.Column("bg_nbd", sa.JSON(), nullable=True),
        sa.Column("gamma_gamma", sa.JSON(), nullable=True),
        sa.Column("model_note", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_calibration")),
    )
    with op.batch_alter_table("stage_calibration", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stage_calibration_calibrated_at"), ["calibrated_at"], unique=False
        )

    with op.batch_alter_table("customer_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purchase_days", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_state", schema=None) as batch_op:
        batch_op.drop_column("purchase_days")

    with op.batch_alter_table("stage_calibration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stage_calibration_calibrated_at"))

    op.drop_table("stage_calibration")
