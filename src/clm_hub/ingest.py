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

from sqlalchemy import Connection, Engine, insert, text, update
from sqlalchemy.sql.schema import Table

from clm_hub.cursors import save_cursor
from clm_hub.identity import normalise_email
from clm_hub.linking import (
    IdentityContext,
    content_hash,
    ingest_contacts,
    mark_dirty,
    order_t,
    placeholders_to_write,
    response_t,
)
from clm_hub.records import (
    OrderRecord,
    OrderStatus,
    Page,
    Rejection,
    SurveyResponseRecord,
)
from clm_hub.store.bulk import insert_columns, select_in, update_columns
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
    """What one page (or a batch of pages) did to the store."""

    pages: int = 0
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    suppressed: int = 0
    merges: int = 0
    dirty_customers: set[int] = field(default_factory=set)

    def add(self, other: PageCounts) -> None:
        for name in ("pages", "read", "inserted", "updated", "unchanged", "rejected", "suppressed"):
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
        return self.write_pages(
            ctx_factory, stream, [page], run_row_id=run_row_id, run_id=run_id,
            cursor_version=cursor_version, dry_run=dry_run,
        )  # fmt: skip

    def write_pages(
        self,
        ctx_factory: Callable[[datetime], IdentityContext],
        stream: Stream,
        pages: Sequence[Page[Any]],
        *,
        run_row_id: int | None,
        run_id: str,
        cursor_version: int,
        dry_run: bool = False,
    ) -> PageCounts:
        """Ingest consecutive ``pages`` of one stream in one transaction, with the cursor
        of the last: when a tool answers faster than the store writes, the pages waiting
        share one commit and one set of lookups. A crash loses the batch and the cursor
        together, so the next run re-reads exactly that."""
        if len(pages) == 1:
            [page] = pages
            records, rejected = page.records, page.rejected
        else:
            records = [record for page in pages for record in page.records]
            rejected = [row for page in pages for row in page.rejected]
        cursor = next((p.cursor for p in reversed(pages) if p.cursor is not None), None)
        with self.lock, self.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INGEST_LOCK})
                now = self._now()
                ctx = ctx_factory(now)
                counts = _ingest(conn, ctx, stream, records)
                counts.pages = len(pages)
                counts.read = len(records) + len(rejected)
                counts.rejected = len(rejected)
                _reject(conn, ctx, stream, run_id, rejected)
                if cursor is not None:
                    save_cursor(conn, ctx.source, stream, cursor_version, cursor, now)
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
        return _ingest_facts(conn, ctx, order_t, records, _order_columns)
    return _ingest_facts(conn, ctx, response_t, records, _response_columns)


_STATUS_TEXT = {status: status.value for status in OrderStatus}  # faster than ``.value``


def _order_columns(records: Sequence[OrderRecord]) -> dict[str, list[Any]]:
    return {
        "placed_at": [r.placed_at for r in records],
        "source_updated_at": [r.updated_at for r in records],
        "total": [r.total for r in records],
        "refunded": [r.refunded for r in records],
        "currency": [r.currency for r in records],
        "status": [_STATUS_TEXT[r.status] for r in records],
    }


def _response_columns(records: Sequence[SurveyResponseRecord]) -> dict[str, list[Any]]:
    return {
        "survey_id": [r.survey_id for r in records],
        "score": [r.score for r in records],
        "answered_at": [r.answered_at for r in records],
        "comment": [r.comment for r in records],
    }


@dataclass
class _Fact:
    """An order or survey answer to write, with what the page decided about it."""

    record: Any
    digest: str
    email: str | None
    reference: str | None
    customer: int | None = None
    row_id: int | None = None


def _ingest_facts(
    conn: Connection,
    ctx: IdentityContext,
    table: Table,
    records: Sequence[OrderRecord] | Sequence[SurveyResponseRecord],
    to_columns: Callable[[list[Any]], dict[str, list[Any]]],
) -> PageCounts:
    """Orders and survey answers: rows that belong to a customer found by reference."""
    counts = PageCounts()
    latest = {r.external_id: r for r in records}
    lookup = (
        f"SELECT external_id, id, content_hash, customer_id FROM {table.name}"
        " WHERE source = ? AND external_id IN"
    )
    existing: dict[str, tuple[int, str, int | None]] = {
        ext: (row_id, digest, customer)
        for ext, row_id, digest, customer in select_in(conn, lookup, latest, (ctx.source,))
    }

    work: list[_Fact] = []
    references: dict[str, str | None] = {}  # customer reference -> its normalised email
    for record in latest.values():
        digest = content_hash(record)
        known = existing.get(record.external_id)
        if known is not None and known[1] == digest:
            counts.unchanged += 1
            continue
        email = normalise_email(record.email, ctx.rules)
        reference = record.customer_external_id or (f"guest:{email}" if email else None)
        if reference is not None and reference not in references:
            references[reference] = email
        work.append(_Fact(record, digest, email, reference))
    if not work:
        return counts

    linked_before, missing = placeholders_to_write(conn, ctx, references)
    linked = ingest_contacts(conn, ctx, missing, placeholders=True)
    linked.customer_by_external_id.update(linked_before)
    counts.dirty_customers |= linked.dirty_customers
    counts.merges += linked.merges
    customer_of = linked.customer_by_external_id
    new: list[_Fact] = []
    changed: list[_Fact] = []
    for fact in work:
        fact.customer = customer_of.get(fact.reference) if fact.reference else None
        if fact.customer is not None:
            counts.dirty_customers.add(fact.customer)
        known = existing.get(fact.record.external_id)
        if known is None:
            new.append(fact)
        else:
            fact.row_id = known[0]
            changed.append(fact)
            if known[2] is not None:
                counts.dirty_customers.add(known[2])
    if new:
        insert_columns(conn, table, _fact_columns(ctx, table, new, to_columns))
    if changed:
        columns = _fact_columns(ctx, table, changed, to_columns)
        columns["id"] = [fact.row_id for fact in changed]
        update_columns(conn, table, columns)
    counts.inserted = len(new)
    counts.updated = len(changed)
    mark_dirty(conn, counts.dirty_customers, ctx.now)
    return counts


def _fact_columns(
    ctx: IdentityContext,
    table: Table,
    facts: Sequence[_Fact],
    to_columns: Callable[[list[Any]], dict[str, list[Any]]],
) -> dict[str, list[Any]]:
    """The rows to write, column by column (cheaper than a mapping per row)."""
    records = [fact.record for fact in facts]
    columns = to_columns(records)
    columns["source"] = [ctx.source] * len(facts)
    columns["external_id"] = [r.external_id for r in records]
    columns["customer_id"] = [fact.customer for fact in facts]
    columns["source_customer_id"] = [r.customer_external_id for r in records]
    # A forgotten person's email is not kept, even on their orders.
    columns["email"] = [fact.email if fact.customer is not None else None for fact in facts]
    columns["content_hash"] = [fact.digest for fact in facts]
    if table is order_t:
        columns["deleted_at"] = [ctx.now if r.deleted else None for r in records]
    return columns


def _reject(
    conn: Connection,
    ctx: IdentityContext,
    stream: Stream,
    run_id: str,
    rejected: Sequence[Rejection],
) -> None:
    """Keep each rejected row for inspection, once: a tool re-read over a cursor's overlap
    (Typeform's inclusive ``since``, say) sends the same bad record every run, and a row per
    run would bury the others. The run's own count still says it was seen again."""
    known = {
        (ext, reason)
        for ext, reason in select_in(
            conn,
            _REJECTED_SQL,
            {r.external_id for r in rejected if r.external_id},
            (ctx.source, stream),
        )
    }
    fresh = [r for r in rejected if r.external_id is None or (r.external_id, r.reason) not in known]
    if fresh:
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
                for r in fresh
            ],
        )


_REJECTED_SQL = (
    "SELECT external_id, reason FROM rejected_record WHERE connector = ? AND stream = ?"
    " AND external_id IN"
)


def _count(conn: Connection, run_row_id: int, counts: PageCounts) -> None:
    c = run_t.c
    conn.execute(
        update(run_t)
        .where(c.id == run_row_id)
        .values(
            pages=c.pages + counts.pages,
            records_read=c.records_read + counts.read,
            inserted=c.inserted + counts.inserted,
            updated=c.updated + counts.updated,
            unchanged=c.unchanged + counts.unchanged,
            rejected=c.rejected + counts.rejected,
            suppressed=c.suppressed + counts.suppressed,
        )
    )
