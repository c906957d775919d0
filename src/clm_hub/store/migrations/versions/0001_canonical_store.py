"""canonical store

Revision ID: 0001
Revises:
Create Date: 2026-11-22 21:17:47.733370
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import clm_hub.store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "customer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("first_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("last_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("marketing_consent", sa.Boolean(), nullable=True),
        sa.Column(
            "acquisition_channel", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True
        ),
        sa.Column("created_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("erased_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_phone"), ["phone"], unique=False)

    op.create_table(
        "customer_merge",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "survivor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "merged_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_merge")),
    )
    with op.batch_alter_table("customer_merge", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_merge_merged_id"), ["merged_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_customer_merge_survivor_id"), ["survivor_id"], unique=False
        )

    op.create_table(
        "erasure_tombstone",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("identifier_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("erased_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_tombstone")),
        sa.UniqueConstraint(
            "kind", "identifier_hash", name=op.f("uq_erasure_tombstone_kind_identifier_hash")
        ),
    )
    op.create_table(
        "lease",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("acquired_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lease")),
    )
    op.create_table(
        "rejected_record",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("connector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_record")),
    )
    with op.batch_alter_table("rejected_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rejected_record_connector_created_at", ["connector", "created_at"], unique=False
        )

    op.create_table(
        "sync_cursor",
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_since", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("updated_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "stream", name=op.f("pk_sync_cursor")),
    )
    op.create_table(
        "sync_run",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("connector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("pages", sa.Integer(), server_default="0", nullable=False),
        sa.Column("records_read", sa.Integer(), server_default="0", nullable=False),
        sa.Column("inserted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unchanged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column("api_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("throttled", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_run")),
    )
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_run_connector_started_at", ["connector", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_sync_run_run_id"), ["run_id"], unique=False)

    op.create_table(
        "customer_order",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "source_customer_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True
        ),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("placed_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "source_updated_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("total", clm_hub.store.types.Money(), nullable=False),
        sa.Column("refunded", clm_hub.store.types.Money(), server_default="0", nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("deleted_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_order_customer_id_customer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_order")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_customer_order_source_external_id")
        ),
    )
    with op.batch_alter_table("customer_order", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_order_customer_id_placed_at", ["customer_id", "placed_at"], unique=False
        )

    op.create_table(
        "customer_state",
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("stage_since", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("rfm_r", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_f", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_m", sa.SmallInteger(), nullable=True),
        sa.Column("orders_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("revenue", clm_hub.store.types.Money(), server_default="0", nullable=False),
        sa.Column("first_order_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("nps_score", sa.SmallInteger(), nullable=True),
        sa.Column("nps_class", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("expected_value", clm_hub.store.types.Money(), nullable=True),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("next_due_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("computed_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_state_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_state")),
    )
    with op.batch_alter_table("customer_state", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_state_next_due_at"), ["next_due_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_customer_state_stage"), ["stage"], unique=False)

    op.create_table(
        "push_state",
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
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
        batch_op.create_index(
            batch_op.f("ix_push_state_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    op.create_table(
        "source_identity",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("first_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("last_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("marketing_consent", sa.Boolean(), nullable=True),
        sa.Column(
            "acquisition_channel", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True
        ),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column(
            "source_created_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "source_updated_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("deleted_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("first_seen_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_source_identity_customer_id_customer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_identity")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_source_identity_source_external_id")
        ),
    )
    with op.batch_alter_table("source_identity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_identity_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_source_identity_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_source_identity_phone"), ["phone"], unique=False)

    op.create_table(
        "stage_transition",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("from_stage", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("to_stage", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_stage_transition_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_transition")),
    )
    with op.batch_alter_table("stage_transition", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stage_transition_customer_id_at", ["customer_id", "at"], unique=False
        )

    op.create_table(
        "survey_response",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "source_customer_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True
        ),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("survey_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("answered_at", clm_hub.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_survey_response_customer_id_customer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_response")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_survey_response_source_external_id")
        ),
    )
    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_response_customer_id_answered_at",
            ["customer_id", "answered_at"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_response_customer_id_answered_at")

    op.drop_table("survey_response")
    with op.batch_alter_table("stage_transition", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_transition_customer_id_at")

    op.drop_table("stage_transition")
    with op.batch_alter_table("source_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_identity_phone"))
        batch_op.drop_index(batch_op.f("ix_source_identity_email"))
        batch_op.drop_index(batch_op.f("ix_source_identity_customer_id"))

    op.drop_table("source_identity")
    with op.batch_alter_table("push_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_state_next_attempt_at"))

    op.drop_table("push_state")
    with op.batch_alter_table("customer_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_state_stage"))
        batch_op.drop_index(batch_op.f("ix_customer_state_next_due_at"))

    op.drop_table("customer_state")
    with op.batch_alter_table("customer_order", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_order_customer_id_placed_at")

    op.drop_table("customer_order")
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_run_run_id"))
        batch_op.drop_index("ix_sync_run_connector_started_at")

    op.drop_table("sync_run")
    op.drop_table("sync_cursor")
    with op.batch_alter_table("rejected_record", schema=None) as batch_op:
        batch_op.drop_index("ix_rejected_record_connector_created_at")

    op.drop_table("rejected_record")
    op.drop_table("lease")
    op.drop_table("erasure_tombstone")
    with op.batch_alter_table("customer_merge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_merge_survivor_id"))
        batch_op.drop_index(batch_op.f("ix_customer_merge_merged_id"))

    op.drop_table("customer_merge")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_phone"))
        batch_op.drop_index(batch_op.f("ix_customer_email"))

    op.drop_table("customer")
