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
from clm_hub.linking import (
    IdentityContext,
    ingest_contacts,
    mark_dirty,
    order_t,
    placeholders_to_write,
    response_t,
)
from clm_hub.prepare import PreparedFacts, PreparedPage, PrepareRules, combine, prepare_page
from clm_hub.records import Page, Rejection
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
        pages: Sequence[Page[Any] | PreparedPage],
        *,
        run_row_id: int | None,
        run_id: str,
        cursor_version: int,
        dry_run: bool = False,
    ) -> PageCounts:
        """Ingest consecutive ``pages`` of one stream in one transaction, with the cursor
        of the last: when a tool answers faster than the store writes, the pages waiting
        share one commit and one set of lookups. A crash loses the batch and the cursor
        together, so the next run re-reads exactly that. Pages come as a connector yields
        them or already prepared by a pull worker."""
        with self.lock, self.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INGEST_LOCK})
                now = self._now()
                ctx = ctx_factory(now)
                rules = PrepareRules(
                    ctx.rules, ctx.default_region, ctx.tag_prefix, self.engine.url.drivername
                )
                page = combine(
                    [
                        p if isinstance(p, PreparedPage) else prepare_page(stream, p, rules)
                        for p in pages
                    ]
                )
                counts = _ingest(conn, ctx, stream, page)
                counts.pages = len(pages)
                counts.read = page.records + len(page.rejected)
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
    conn: Connection, ctx: IdentityContext, stream: Stream, page: PreparedPage
) -> PageCounts:
    if page.contacts is not None:
        contacts = page.contacts
        result = ingest_contacts(conn, ctx, contacts.records, keys=contacts)
        return PageCounts(
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            suppressed=result.suppressed,
            merges=result.merges,
            dirty_customers=result.dirty_customers,
        )
    if page.facts is None or not len(page.facts):
        return PageCounts()
    return _ingest_facts(conn, ctx, order_t if stream == "orders" else response_t, page.facts)


def _ingest_facts(
    conn: Connection, ctx: IdentityContext, table: Table, facts: PreparedFacts
) -> PageCounts:
    """Orders and survey answers: rows that belong to a customer found by reference."""
    counts = PageCounts()
    latest: dict[str, int] = {}
    for index, ext in enumerate(facts.external_ids):  # the last copy in a page wins
        latest[ext] = index
    lookup = (
        f"SELECT external_id, id, content_hash, customer_id FROM {table.name}"
        " WHERE source = ? AND external_id IN"
    )
    existing: dict[str, tuple[int, str, int | None]] = {
        ext: (row_id, digest, customer)
        for ext, row_id, digest, customer in select_in(conn, lookup, latest, (ctx.source,))
    }

    work: list[int] = []  # indexes into ``facts`` of the rows to write
    references: list[str | None] = []
    wanted: dict[str, str | None] = {}  # customer reference -> its normalised email
    digests, emails, owners = facts.digests, facts.emails, facts.customer_external_ids
    for ext, index in latest.items():
        known = existing.get(ext)
        if known is not None and known[1] == digests[index]:
            counts.unchanged += 1
            continue
        email = emails[index]
        reference = owners[index] or (f"guest:{email}" if email else None)
        if reference is not None and reference not in wanted:
            wanted[reference] = email
        work.append(index)
        references.append(reference)
    if not work:
        return counts

    linked_before, missing = placeholders_to_write(conn, ctx, wanted)
    linked = ingest_contacts(conn, ctx, missing, placeholders=True)
    linked.customer_by_external_id.update(linked_before)
    counts.dirty_customers |= linked.dirty_customers
    counts.merges += linked.merges
    customer_of = linked.customer_by_external_id
    new: list[tuple[int, int | None]] = []
    changed: list[tuple[int, int | None]] = []
    changed_ids: list[int] = []
    for index, reference in zip(work, references, strict=True):
        customer = customer_of.get(reference) if reference else None
        if customer is not None:
            counts.dirty_customers.add(customer)
        known = existing.get(facts.external_ids[index])
        if known is None:
            new.append((index, customer))
        else:
            changed.append((index, customer))
            changed_ids.append(known[0])
            if known[2] is not None:
                counts.dirty_customers.add(known[2])
    stored = facts.values.keys()  # prepared as the driver takes them
    if new:
        insert_columns(conn, table, _fact_columns(ctx, table, facts, new), stored=stored)
    if changed:
        columns = _fact_columns(ctx, table, facts, changed)
        columns["id"] = changed_ids
        update_columns(conn, table, columns, stored=stored)
    counts.inserted = len(new)
    counts.updated = len(changed)
    mark_dirty(conn, counts.dirty_customers, ctx.now)
    return counts


def _fact_columns(
    ctx: IdentityContext,
    table: Table,
    facts: PreparedFacts,
    rows: Sequence[tuple[int, int | None]],
) -> dict[str, list[Any]]:
    """The rows to write (index into ``facts``, customer), column by column."""
    picked = [index for index, _ in rows]
    columns = {name: [values[i] for i in picked] for name, values in facts.values.items()}
    columns["source"] = [ctx.source] * len(rows)
    columns["external_id"] = [facts.external_ids[i] for i in picked]
    columns["customer_id"] = [customer for _, customer in rows]
    columns["source_customer_id"] = [facts.customer_external_ids[i] for i in picked]
    # A forgotten person's email is not kept, even on their orders.
    emails = facts.emails
    columns["email"] = [emails[i] if customer is not None else None for i, customer in rows]
    columns["content_hash"] = [facts.digests[i] for i in picked]
    if table is order_t:
        deleted = facts.deleted
        columns["deleted_at"] = [ctx.now if deleted[i] else None for i in picked]
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
