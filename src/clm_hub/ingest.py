"""Writing one page from a connector into the store, in one transaction.

A page's records, its rejected rows, the stream cursor that follows it and the run's
counters commit together or not at all: a crash at any point leaves the store as it was
after the previous page, and the next run re-reads from the cursor stored with it.
Re-reading a page is harmless, since unchanged records (same content hash) cost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.sql.schema import Table

from clm_hub.cursors import save_cursor
from clm_hub.identity import normalise_email
from clm_hub.linking import (
    IdentityContext,
    chunks,
    content_hash,
    ingest_contacts,
    known_identities,
    mark_dirty,
    order_t,
    response_t,
)
from clm_hub.records import (
    ContactRecord,
    OrderRecord,
    Page,
    Rejection,
    SurveyResponseRecord,
)
from clm_hub.store.bulk import bulk_insert, bulk_update
from clm_hub.store.tables import RejectedRecord, SyncRun

__all__ = ["STREAMS", "PageCounts", "PageWriter", "Stream"]

Stream = Literal["contacts", "orders", "survey_responses"]
STREAMS: tuple[Stream, ...] = ("contacts", "orders", "survey_responses")
"""Pull order within a connector: contacts first, so orders find their customers."""

rejected_t = RejectedRecord.__table__  # type: ignore[attr-defined]
run_t = SyncRun.__table__  # type: ignore[attr-defined]

# Any fixed number: every replica takes the same transaction-scoped lock before linking,
# so two daemons never merge the same customers at once (PostgreSQL only; SQLite already
# has a single writer).
_PG_INGEST_LOCK = 0x636C6D68  # "clmh"


@dataclass
class PageCounts:
    """What one page did to the store."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    suppressed: int = 0
    merges: int = 0
    dirty_customers: set[int] = field(default_factory=set)

    def add(self, other: PageCounts) -> None:
        for name in ("read", "inserted", "updated", "unchanged", "rejected", "suppressed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.merges += other.merges


class PageWriter:
    """Writes pages for any connector; one writer at a time per process (and per database
    on PostgreSQL), so HTTP for other connectors goes on while a page is written."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self._now = now
        self.lock = threading.Lock()
        """Held by every writer of this process (pages, push outcomes)."""

    def write(
        self,
        ctx_factory: Callable[[datetime], IdentityContext],
        stream: Stream,
        page: Page[Any],
        *,
        run_row_id: int | None,
        run_id: str,
        cursor_version: int,
        dry_run: bool = False,
    ) -> PageCounts:
        """Ingest ``page`` and move the stream cursor, atomically. Blocking: run it in a
        worker thread. With ``dry_run`` everything is computed and then rolled back."""
        with self.lock, self.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INGEST_LOCK})
                now = self._now()
                ctx = ctx_factory(now)
                counts = _ingest(conn, ctx, stream, page.records)
                counts.read = len(page.records) + len(page.rejected)
                counts.rejected = len(page.rejected)
                _reject(conn, ctx, stream, run_id, page.rejected)
                if page.cursor is not None:
                    save_cursor(conn, ctx.source, stream, cursor_version, page.cursor, now)
                if run_row_id is not None:
                    _count(conn, run_row_id, counts)
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
            return counts


def _ingest(
    conn: Connection, ctx: IdentityContext, stream: Stream, records: Sequence[Any]
) -> PageCounts:
    if stream == "contacts":
        result = ingest_contacts(conn, ctx, records)
        return PageCounts(
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            suppressed=result.suppressed,
            merges=result.merges,
            dirty_customers=result.dirty_customers,
        )
    if stream == "orders":
        return _ingest_facts(conn, ctx, order_t, records, _order_row)
    return _ingest_facts(conn, ctx, response_t, records, _response_row)


def _order_row(record: OrderRecord) -> dict[str, Any]:
    return {
        "placed_at": record.placed_at,
        "source_updated_at": record.updated_at,
        "total": record.total,
        "refunded": record.refunded,
        "currency": record.currency,
        "status": record.status.value,
    }


def _response_row(record: SurveyResponseRecord) -> dict[str, Any]:
    return {
        "survey_id": record.survey_id,
        "score": record.score,
        "answered_at": record.answered_at,
        "comment": record.comment,
    }


def _ingest_facts(
    conn: Connection,
    ctx: IdentityContext,
    table: Table,
    records: Sequence[OrderRecord] | Sequence[SurveyResponseRecord],
    to_row: Callable[[Any], dict[str, Any]],
) -> PageCounts:
    """Orders and survey answers: rows that belong to a customer found by reference."""
    counts = PageCounts()
    latest = {r.external_id: r for r in records}
    existing: dict[str, tuple[int, str, int | None]] = {}
    for batch in chunks(latest):
        for ext, row_id, digest, customer in conn.execute(
            select(table.c.external_id, table.c.id, table.c.content_hash, table.c.customer_id)
            .where(table.c.source == ctx.source, table.c.external_id.in_(batch))
        ):  # fmt: skip
            existing[ext] = (row_id, digest, customer)

    work: list[tuple[Any, str, str | None]] = []  # (record, digest, customer reference)
    references: dict[str, str | None] = {}  # customer reference -> email on the record
    for record in latest.values():
        digest = content_hash(record)
        known = existing.get(record.external_id)
        if known is not None and known[1] == digest:
            counts.unchanged += 1
            continue
        email = normalise_email(record.email, ctx.rules)
        reference = record.customer_external_id or (f"guest:{email}" if email else None)
        if reference is not None and reference not in references:
            references[reference] = record.email
        work.append((record, digest, reference))
    if not work:
        return counts

    linked_before = known_identities(conn, ctx.source, references)
    missing = [
        ContactRecord(external_id=ext, email=email)
        for ext, email in references.items()
        if ext not in linked_before
    ]
    linked = ingest_contacts(conn, ctx, missing, placeholders=True)
    linked.customer_by_external_id.update(linked_before)
    counts.dirty_customers |= linked.dirty_customers
    counts.merges += linked.merges
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    for record, digest, reference in work:
        customer = linked.customer_by_external_id.get(reference) if reference else None
        row = {
            **to_row(record),
            "source": ctx.source,
            "external_id": record.external_id,
            "customer_id": customer,
            "source_customer_id": record.customer_external_id,
            # A forgotten person's email is not kept, even on their orders.
            "email": normalise_email(record.email, ctx.rules) if customer is not None else None,
            "content_hash": digest,
        }
        if table is order_t:
            row["deleted_at"] = ctx.now if record.deleted else None
        if customer is not None:
            counts.dirty_customers.add(customer)
        known = existing.get(record.external_id)
        if known is None:
            new_rows.append(row)
        else:
            changed_rows.append({**row, "id": known[0]})
            if known[2] is not None:
                counts.dirty_customers.add(known[2])
    bulk_insert(conn, table, new_rows)
    bulk_update(conn, table, changed_rows)
    counts.inserted = len(new_rows)
    counts.updated = len(changed_rows)
    mark_dirty(conn, counts.dirty_customers, ctx.now)
    return counts


def _reject(
    conn: Connection,
    ctx: IdentityContext,
    stream: Stream,
    run_id: str,
    rejected: Sequence[Rejection],
) -> None:
    if rejected:
        conn.execute(
            insert(rejected_t),
            [
                {
                    "run_id": run_id,
                    "connector": ctx.source,
                    "stream": stream,
                    "external_id": r.external_id,
                    "reason": r.reason,
                    "payload": r.payload,
                    "created_at": ctx.now,
                }
                for r in rejected
            ],
        )


def _count(conn: Connection, run_row_id: int, counts: PageCounts) -> None:
    c = run_t.c
    conn.execute(
        update(run_t)
        .where(c.id == run_row_id)
        .values(
            pages=c.pages + 1,
            records_read=c.records_read + counts.read,
            inserted=c.inserted + counts.inserted,
            updated=c.updated + counts.updated,
            unchanged=c.unchanged + counts.unchanged,
            rejected=c.rejected + counts.rejected,
            suppressed=c.suppressed + counts.suppressed,
        )
    )
