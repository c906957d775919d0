"""The canonical store: one customer per person, what each tool said about them, and the
hub's own bookkeeping (cursors, runs, pushes, leases).

Unique constraints make re-ingesting a record idempotent: a tool's record is identified by
``(source, external_id)`` where ``source`` is the connector id from the config. Schema
changes go through Alembic migrations (``clm_hub/store/migrations``), never ``create_all``
on a live database; a test checks the migrations and these tables agree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from clm_hub.store.types import Money, UtcDateTime

__all__ = [
    "Customer",
    "CustomerMerge",
    "CustomerState",
    "ErasureTombstone",
    "Lease",
    "Order",
    "PushState",
    "RejectedRecord",
    "SourceIdentity",
    "StageCalibration",
    "StageTransition",
    "SurveyResponse",
    "SyncCursor",
    "SyncRun",
    "WebhookDelivery",
    "metadata",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class _Base(SQLModel):
    metadata = MetaData(naming_convention=NAMING)


metadata = _Base.metadata

ID = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids; on SQLite plain INTEGER, the only type that auto-increments there."""


def _utc(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index))


def _counter() -> Any:
    return Field(default=0, sa_column_kwargs={"server_default": "0"})


def _customer_fk(*, nullable: bool = True, index: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            ID,
            ForeignKey("customer.id", ondelete="SET NULL"),
            nullable=nullable,
            index=index,
        ),
    )


class Customer(_Base, table=True):
    """One person, merged across every tool that knows them."""

    __tablename__ = "customer"

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    email: str | None = Field(default=None, max_length=320, index=True)
    """Normalised (trimmed, case-folded, NFKC) email."""
    phone: str | None = Field(default=None, max_length=32, index=True)
    """E.164 phone number."""
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    marketing_consent: bool | None = None
    acquisition_channel: str | None = Field(default=None, max_length=255)
    created_at: datetime = _utc(nullable=False)
    updated_at: datetime = _utc(nullable=False, index=True)
    """Moves whenever the customer's data changes, so stages are recomputed for exactly those."""
    erased_at: datetime | None = _utc()
    """Set when the person was forgotten: personal fields are cleared, the row stays so that
    their orders still count in aggregates."""


class SourceIdentity(_Base, table=True):
    """A person's record in one tool, linked to its canonical customer."""

    __tablename__ = "source_identity"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    source: str = Field(max_length=64)
    external_id: str = Field(max_length=255)
    customer_id: int | None = _customer_fk()
    email: str | None = Field(default=None, max_length=320, index=True)
    phone: str | None = Field(default=None, max_length=32, index=True)
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    marketing_consent: bool | None = None
    acquisition_channel: str | None = Field(default=None, max_length=255)
    tags: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )
    """The tool's tags as last read, foreign ones included."""
    source_created_at: datetime | None = _utc()
    source_updated_at: datetime | None = _utc()
    deleted_at: datetime | None = _utc()
    content_hash: str = Field(max_length=64)
    """Hash of the record as read: an unchanged re-read costs no write."""
    first_seen_at: datetime = _utc(nullable=False)
    last_seen_at: datetime = _utc(nullable=False)


class Order(_Base, table=True):
    """An order from a shop or CRM, in its own currency."""

    __tablename__ = "customer_order"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # Covers every column the stage engine reads, in (customer, time) order (migration 0008).
        Index(
            "ix_customer_order_customer_id_placed_at_covering",
            "customer_id",
            "placed_at",
            "status",
            "currency",
            "total",
            "refunded",
            "deleted_at",
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    source: str = Field(max_length=64)
    external_id: str = Field(max_length=255)
    customer_id: int | None = _customer_fk(index=False)
    source_customer_id: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    placed_at: datetime = _utc(nullable=False)
    source_updated_at: datetime | None = _utc()
    total: Decimal = Field(sa_column=Column(Money(), nullable=False))
    refunded: Decimal = Field(
        default=Decimal(0), sa_column=Column(Money(), nullable=False, server_default="0")
    )
    currency: str = Field(max_length=3)
    status: str = Field(max_length=24)
    deleted_at: datetime | None = _utc()
    content_hash: str = Field(max_length=64)


class SurveyResponse(_Base, table=True):
    """One 0-10 recommendation answer."""

    __tablename__ = "survey_response"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_survey_response_customer_id_answered_at", "customer_id", "answered_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    source: str = Field(max_length=64)
    external_id: str = Field(max_length=255)
    customer_id: int | None = _customer_fk(index=False)
    source_customer_id: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    survey_id: str | None = Field(default=None, max_length=255)
    score: int = Field(sa_column=Column(SmallInteger, nullable=False))
    answered_at: datetime = _utc(nullable=False)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    content_hash: str = Field(max_length=64)


class CustomerState(_Base, table=True):
    """The computed lifecycle stage, segments and the numbers behind them."""

    __tablename__ = "customer_state"

    customer_id: int = Field(
        sa_column=Column(ID, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    stage: str = Field(max_length=32, index=True)
    stage_since: datetime = _utc(nullable=False)
    segments: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )
    rfm_r: int | None = Field(default=None, sa_column=Column(SmallInteger))
    rfm_f: int | None = Field(default=None, sa_column=Column(SmallInteger))
    rfm_m: int | None = Field(default=None, sa_column=Column(SmallInteger))
    orders_count: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    """Paid orders (status paid or partially_refunded) in the main currency."""
    purchase_days: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    """Distinct UTC days with a paid order: same-day orders are one purchase."""
    revenue: Decimal = Field(
        default=Decimal(0), sa_column=Column(Money(), nullable=False, server_default="0")
    )
    first_order_at: datetime | None = _utc()
    last_order_at: datetime | None = _utc()
    nps_score: int | None = Field(default=None, sa_column=Column(SmallInteger))
    nps_class: str | None = Field(default=None, max_length=16)
    p_alive: float | None = None
    expected_value: Decimal | None = Field(default=None, sa_column=Column(Money()))
    explanation: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict)
    )
    next_due_at: datetime | None = _utc(index=True)
    """When a time-based change (e.g. new -> at-risk) is next due, so cycles find it cheaply."""
    computed_at: datetime = _utc(nullable=False)


class StageTransition(_Base, table=True):
    """History: a customer moved from one stage to another, and why."""

    __tablename__ = "stage_transition"
    __table_args__ = (Index("ix_stage_transition_customer_id_at", "customer_id", "at"),)

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    customer_id: int = Field(
        sa_column=Column(ID, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    )
    from_stage: str | None = Field(default=None, max_length=32)
    to_stage: str = Field(max_length=32)
    at: datetime = _utc(nullable=False)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))


class CustomerMerge(_Base, table=True):
    """A record that two customers were found to be one person and merged."""

    __tablename__ = "customer_merge"

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    survivor_id: int = Field(sa_column=Column(ID, nullable=False, index=True))
    merged_id: int = Field(sa_column=Column(ID, nullable=False, index=True))
    reason: str = Field(max_length=255)
    at: datetime = _utc(nullable=False)


class ErasureTombstone(_Base, table=True):
    """A forgotten identifier (hashed), so stale data never re-creates the person."""

    __tablename__ = "erasure_tombstone"
    __table_args__ = (UniqueConstraint("kind", "identifier_hash"),)

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    kind: str = Field(max_length=16)
    """``email``, ``phone`` or ``source:<connector>``."""
    identifier_hash: str = Field(max_length=64)
    erased_at: datetime = _utc(nullable=False)


class PushState(_Base, table=True):
    """What the hub last pushed successfully to one record in one tool, and retry state.

    Keyed by the tool's record, not the customer: a person may have two records in one
    tool, and a merge of customers then only re-points ``customer_id``.
    """

    __tablename__ = "push_state"

    connector: str = Field(sa_column=Column(String(64), primary_key=True))
    external_id: str = Field(sa_column=Column(String(255), primary_key=True))
    customer_id: int | None = _customer_fk()
    tags: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )
    """Owned tags the tool has, as of the last successful push."""
    fields: dict[str, str | None] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict)
    )
    """Owned fields the tool has, as of the last successful push."""
    pushed_at: datetime | None = _utc()
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    """Failed attempts at the change in ``attempted_digest``."""
    attempted_digest: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    next_attempt_at: datetime | None = _utc(index=True)
    gave_up_at: datetime | None = _utc()
    """Set after the last allowed attempt; a different desired state is tried afresh."""


class SyncCursor(_Base, table=True):
    """Where one connector stream resumes; moved in the transaction of the data it covers."""

    __tablename__ = "sync_cursor"

    connector: str = Field(sa_column=Column(String(64), primary_key=True))
    stream: str = Field(sa_column=Column(String(64), primary_key=True))
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    updated_since: datetime | None = _utc()
    token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = _utc(nullable=False)


class SyncRun(_Base, table=True):
    """One connector stream's part of one cycle, with its counts."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_connector_started_at", "connector", "started_at"),)

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    run_id: str = Field(max_length=36, index=True)
    connector: str = Field(max_length=64)
    stream: str = Field(max_length=64)
    kind: str = Field(default="cycle", max_length=16, sa_column_kwargs={"server_default": "cycle"})
    """What started the run: ``cycle`` (a regular pull), ``reconcile`` (a sweep over a
    longer window) or ``stages`` (a push of time-based stage changes, no pull)."""
    status: str = Field(max_length=16)
    """``running``, ``ok``, ``partial`` or ``failed``."""
    started_at: datetime = _utc(nullable=False)
    finished_at: datetime | None = _utc()
    pages: int = _counter()
    records_read: int = _counter()
    inserted: int = _counter()
    updated: int = _counter()
    unchanged: int = _counter()
    rejected: int = _counter()
    suppressed: int = _counter()
    """Records skipped because they belong to a person who was forgotten."""
    planned: int = _counter()
    """Push runs: records with a change to send."""
    sent: int = _counter()
    confirmed: int = _counter()
    failed: int = _counter()
    batches: int = _counter()
    api_calls: int = _counter()
    retries: int = _counter()
    throttled: int = _counter()
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class RejectedRecord(_Base, table=True):
    """Bad input kept for inspection, with the reason it was refused."""

    __tablename__ = "rejected_record"
    __table_args__ = (Index("ix_rejected_record_connector_created_at", "connector", "created_at"),)

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    run_id: str | None = Field(default=None, max_length=36)
    connector: str = Field(max_length=64)
    stream: str = Field(max_length=64)
    external_id: str | None = Field(default=None, max_length=255)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    payload: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = _utc(nullable=False)


class Lease(_Base, table=True):
    """Which daemon replica runs a piece of work, until when."""

    __tablename__ = "lease"

    name: str = Field(sa_column=Column(String(128), primary_key=True))
    holder: str = Field(max_length=128)
    acquired_at: datetime = _utc(nullable=False)
    expires_at: datetime = _utc(nullable=False)


class StageCalibration(_Base, table=True):
    """The windows, RFM thresholds and model fits in force from ``calibrated_at`` on.

    Written at each calibration refresh (a full recompute); the newest row is the one in force.
    Incremental cycles rescore changed and due customers against it, so a stored stage can
    always be explained with the numbers it was computed from.
    """

    __tablename__ = "stage_calibration"

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    calibrated_at: datetime = _utc(nullable=False, index=True)
    rules_fingerprint: str = Field(max_length=64)
    """SHA-256 of the stage rules the calibration was made for."""
    currency: str = Field(max_length=3)
    """The main currency every amount below is in."""
    observed_from: datetime | None = _utc()
    """First paid order in the data: the calibration window is [observed_from, calibrated_at]."""
    cycle_days: float
    """Shop purchase cycle in days (median days from first to second purchase day, or set)."""
    windows: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict)
    )
    """Resolved windows in days, with how each was derived."""
    rfm_thresholds: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    """R, F, M cut points (``Thresholds.to_dict``); NULL when nobody has bought yet."""
    bg_nbd: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    """Fitted BG/NBD parameters with their time unit; NULL when not fitted (see model_note)."""
    gamma_gamma: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    model_note: str = Field(default="", sa_column=Column(Text, nullable=False))
    """Why the models are (not) in use: sample size, or the fit error."""
    details: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, default=dict)
    )
    """Counts behind the calibration (buyers, orders ignored per other currency, ...)."""


class WebhookDelivery(_Base, table=True):
    """A webhook delivery already ingested, by the tool's event id: a duplicate delivery
    (the tool retrying, or a replay within its freshness window) changes nothing."""

    __tablename__ = "webhook_delivery"

    connector: str = Field(sa_column=Column(String(64), primary_key=True))
    event_id: str = Field(sa_column=Column(String(255), primary_key=True))
    received_at: datetime = _utc(nullable=False, index=True)
    """When it was ingested; rows older than the daemon's ``webhook_retention`` are pruned."""
