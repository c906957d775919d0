"""Writing contacts into the store and linking them to canonical customers.

One call handles one page inside the caller's transaction, with a fixed number of
set-based statements however many records the page holds: look up what is known, decide
in memory (``clm_hub.identity``), then write new rows, changed rows, new customers and
merges in bulk. A record whose content hash is unchanged costs no write at all.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from clm_hub.identity import (
    IdentityRules,
    LinkedRecord,
    UnionFind,
    earliest,
    normalise_email,
    normalise_phone,
    survivor_fields,
)
from clm_hub.records import ContactRecord
from clm_hub.store.bulk import bulk_insert, bulk_update, chunks, select_in
from clm_hub.store.tables import (
    Customer,
    CustomerMerge,
    CustomerState,
    ErasureTombstone,
    Order,
    PushState,
    SourceIdentity,
    StageTransition,
    SurveyResponse,
)

__all__ = [
    "ContactBatchResult",
    "IdentityContext",
    "chunks",
    "content_hash",
    "ingest_contacts",
    "known_identities",
    "mark_dirty",
    "merge_customers",
    "tombstone_hash",
]

customer_t = Customer.__table__  # type: ignore[attr-defined]
identity_t = SourceIdentity.__table__  # type: ignore[attr-defined]
order_t = Order.__table__  # type: ignore[attr-defined]
response_t = SurveyResponse.__table__  # type: ignore[attr-defined]
state_t = CustomerState.__table__  # type: ignore[attr-defined]
transition_t = StageTransition.__table__  # type: ignore[attr-defined]
push_t = PushState.__table__  # type: ignore[attr-defined]
merge_t = CustomerMerge.__table__  # type: ignore[attr-defined]
tombstone_t = ErasureTombstone.__table__  # type: ignore[attr-defined]


# Key lookups on every page, in plain SQL: SQLAlchemy would render each IN value as a
# bound literal, which costs more than the lookup itself (see store.bulk.select_in).
_IDENTITIES_SQL = (
    "SELECT external_id, id, customer_id, content_hash FROM source_identity"
    " WHERE source = ? AND external_id IN"
)
_PUSHED_TAGS_SQL = "SELECT external_id, tags FROM push_state WHERE connector = ? AND external_id IN"
_PLACEHOLDER_SQL = (
    "SELECT external_id, customer_id, content_hash FROM source_identity"
    " WHERE source = ? AND external_id IN"
)
_CUSTOMER_OF_SQL = (
    "SELECT external_id, customer_id FROM source_identity WHERE source = ? AND external_id IN"
)
_COMPUTED_SQL = (
    "SELECT c.id FROM customer AS c JOIN customer_state AS s ON s.customer_id = c.id"
    " WHERE s.computed_at >= c.updated_at AND c.id IN"
)
_EMAIL_HOLDERS_SQL = (
    "SELECT email, customer_id FROM source_identity"
    " WHERE customer_id IS NOT NULL AND deleted_at IS NULL AND email IN"
)
_PHONE_HOLDERS_SQL = (
    "SELECT phone, customer_id, email FROM source_identity"
    " WHERE customer_id IS NOT NULL AND deleted_at IS NULL AND phone IN"
)


def content_hash(record: ContactRecord | Any) -> str:
    """A short stable hash of a record's content: equal hash, nothing to write."""
    # The serializer itself: the bytes of ``model_dump_json()`` without its per-call
    # argument handling (hashes stored by earlier versions stay valid).
    content = record.__pydantic_serializer__.to_json(record)
    return hashlib.blake2b(content, digest_size=16).hexdigest()


PLACEHOLDER_MARK = "~"
"""Content hashes of placeholder identities start with this (real hashes are hex)."""


def placeholder_hash(email: str | None) -> str:
    """The content hash of a placeholder: it changes only when the email it knows does.

    A placeholder stands for a person an order or survey answer names by an id of the tool
    before (or without) any contact record; when a later answer names the same id with an
    email, the placeholder is resolved again, so that person joins the customer of that
    email instead of staying apart. Placeholders written before this mark existed have an
    empty hash, which counts as a placeholder too.
    """
    if email is None:
        return PLACEHOLDER_MARK
    return PLACEHOLDER_MARK + hashlib.blake2b(email.encode(), digest_size=16).hexdigest()


def is_placeholder(digest: str) -> bool:
    return digest == "" or digest.startswith(PLACEHOLDER_MARK)


def contact_hash(record: ContactRecord, tag_prefix: str) -> str:
    """A contact's hash without what the hub itself writes to the tool.

    Our own pushes come back on the next pull as "updated" contacts (new owned tags, a
    newer ``updated_at``). Leaving both out makes such an echo cost nothing and trigger
    nothing; a change to anything else, foreign tags included, still counts.
    """
    owned = f"{tag_prefix}:"
    content = (
        record.external_id, record.email, record.phone, record.first_name, record.last_name,
        record.created_at, record.marketing_consent, record.acquisition_channel,
        record.deleted, tuple(t for t in record.tags if not t.startswith(owned)),
    )  # fmt: skip
    return hashlib.blake2b(repr(content).encode(), digest_size=16).hexdigest()


def tombstone_hash(value: str) -> str:
    """How an erased identifier is remembered: never in clear text."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class IdentityContext:
    """What linking needs besides the records: the rules, the region, the time."""

    source: str
    rules: IdentityRules
    default_region: str | None
    now: datetime
    tag_prefix: str = "clm"
    observes_tags: bool = False
    """The records carry the tool's full tag list (a pull of a connector that reports
    tags): owned tags that differ from the last push were changed by hand in the tool."""


@dataclass
class ContactBatchResult:
    """Counts for one page of contacts, and which customers changed."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    customer_by_external_id: dict[str, int | None] = field(default_factory=dict)
    dirty_customers: set[int] = field(default_factory=set)
    created_customers: set[int] = field(default_factory=set)
    """Customers made from this page alone; their fields were computed as they were made."""
    merges: int = 0
    drifted: int = 0
    """Records whose owned tags in the tool differ from what the hub last pushed."""


class ContactKeys(Protocol):
    """Per-record values derived from a page of contacts (``prepare.PreparedContacts``)."""

    emails: list[str | None]
    phones: list[str | None]
    digests: list[str]


_NO_TAGS: tuple[str, ...] = ()


@dataclass
class _Incoming:
    """A contact record prepared for writing."""

    record: ContactRecord
    email: str | None
    phone: str | None
    digest: str
    identity_id: int | None = None
    old_customer: int | None = None
    customer: int | None = None

    def row(self, ctx: IdentityContext) -> dict[str, Any]:
        r = self.record
        return {
            "source": ctx.source,
            "external_id": r.external_id,
            "email": self.email,
            "phone": self.phone,
            "first_name": r.first_name,
            "last_name": r.last_name,
            "marketing_consent": r.marketing_consent,
            "acquisition_channel": r.acquisition_channel,
            # One shared empty value: the JSON column then encodes it once per page.
            "tags": list(r.tags) if r.tags else _NO_TAGS,
            "source_created_at": r.created_at,
            "source_updated_at": r.updated_at,
            "deleted_at": ctx.now if r.deleted else None,
            "content_hash": self.digest,
            "last_seen_at": ctx.now,
        }

    def linked(self, source: str) -> LinkedRecord:
        r = self.record
        return LinkedRecord(
            source, r.updated_at, r.created_at, self.email, self.phone, r.first_name,
            r.last_name, r.marketing_consent, r.acquisition_channel,
        )  # fmt: skip


def _suppressed_keys(conn: Connection, keys: Mapping[str, set[str]]) -> set[tuple[str, str]]:
    """The (kind, hash) pairs among ``keys`` that belong to erased people."""
    found: set[tuple[str, str]] = set()
    for kind, hashes in keys.items():
        for batch in chunks(hashes):
            rows = conn.execute(
                select(tombstone_t.c.kind, tombstone_t.c.identifier_hash).where(
                    tombstone_t.c.kind == kind, tombstone_t.c.identifier_hash.in_(batch)
                )
            )
            found.update((kind, h) for kind, h in rows)
    return found


def _erased(conn: Connection, ctx: IdentityContext, incoming: Sequence[_Incoming]) -> set[str]:
    """External ids of incoming records that belong to a forgotten person."""
    if not incoming or conn.execute(select(tombstone_t.c.id).limit(1)).first() is None:
        return set()  # nobody was ever forgotten: skip hashing and lookups
    source_kind = f"source:{ctx.source}"
    keys: dict[str, set[str]] = {"email": set(), "phone": set(), source_kind: set()}
    for item in incoming:
        keys[source_kind].add(tombstone_hash(item.record.external_id))
        if item.email:
            keys["email"].add(tombstone_hash(item.email))
        if item.phone:
            keys["phone"].add(tombstone_hash(item.phone))
    hits = _suppressed_keys(conn, keys)
    if not hits:
        return set()
    return {
        item.record.external_id
        for item in incoming
        if (source_kind, tombstone_hash(item.record.external_id)) in hits
        or (item.email and ("email", tombstone_hash(item.email)) in hits)
        or (item.phone and ("phone", tombstone_hash(item.phone)) in hits)
    }


def ingest_contacts(
    conn: Connection,
    ctx: IdentityContext,
    records: Sequence[ContactRecord],
    *,
    placeholders: bool = False,
    keys: ContactKeys | None = None,
) -> ContactBatchResult:
    """Upsert one page of contacts and link each to its canonical customer.

    With ``placeholders`` the records stand for people an order or survey answer refers
    to before (or without) their contact record: a known real record is left untouched; a
    placeholder is written with ``placeholder_hash`` (so the real record overwrites it
    later) and resolved again when it learns an email it did not have. ``keys``: each
    record's normalised email and phone and content hash, when already computed (a pull
    worker does that); otherwise they are computed here.
    """
    result = ContactBatchResult()
    latest: dict[str, int] = {}
    for index, record in enumerate(records):  # the last copy of a record in a page wins
        latest[record.external_id] = index
    existing = {
        ext: (ident, customer, digest)
        for ext, ident, customer, digest in select_in(conn, _IDENTITIES_SQL, latest, (ctx.source,))
    }
    incoming = []
    for index in latest.values():
        record = records[index]
        if keys is not None:
            email, digest = keys.emails[index], keys.digests[index]
        else:
            email = normalise_email(record.email, ctx.rules)
            digest = (
                placeholder_hash(email) if placeholders else contact_hash(record, ctx.tag_prefix)
            )
        known = existing.get(record.external_id)
        if placeholders and known is not None and not _learns_email(known[2], digest, email):
            result.customer_by_external_id[record.external_id] = known[1]
            result.unchanged += 1
            continue
        phone = (
            keys.phones[index]
            if keys is not None
            else normalise_phone(record.phone, ctx.default_region)
        )
        incoming.append(_Incoming(record, email, phone, digest))
    if ctx.observes_tags and not placeholders:
        result.drifted = _note_tag_drift(conn, ctx, {e: records[i] for e, i in latest.items()})
    erased = _erased(conn, ctx, incoming)
    result.suppressed = len(erased)

    work: list[_Incoming] = []
    for item in incoming:
        ext = item.record.external_id
        known = existing.get(ext)
        if known is not None:
            item.identity_id, item.old_customer, digest = known
            result.customer_by_external_id[ext] = item.old_customer
            if digest == item.digest or ext in erased:
                result.unchanged += 1
                continue
        elif ext in erased:
            result.customer_by_external_id[ext] = None
            continue
        work.append(item)
    if not work:
        return result

    deleted = [item for item in work if item.record.deleted]
    live = [item for item in work if not item.record.deleted]
    _resolve(conn, ctx, live, result)
    for item in deleted:
        item.customer = None
        if item.old_customer is not None:
            result.dirty_customers.add(item.old_customer)

    new_rows = [
        {**item.row(ctx), "customer_id": item.customer, "first_seen_at": ctx.now}
        for item in work
        if item.identity_id is None
    ]
    changed_rows = [
        {**item.row(ctx), "customer_id": item.customer, "id": item.identity_id}
        for item in work
        if item.identity_id is not None
    ]
    bulk_insert(conn, identity_t, new_rows)
    bulk_update(conn, identity_t, changed_rows)
    result.inserted = len(new_rows)
    result.updated = len(changed_rows)
    for item in work:
        result.customer_by_external_id[item.record.external_id] = item.customer
        if item.old_customer is not None and item.old_customer != item.customer:
            result.dirty_customers.add(item.old_customer)
    refresh_customers(conn, result.dirty_customers - result.created_customers, ctx)
    return result


def _resolve(
    conn: Connection, ctx: IdentityContext, live: Sequence[_Incoming], result: ContactBatchResult
) -> None:
    """Decide each live record's customer: existing link, shared keys, or a new customer."""
    if not live:
        return
    rules = ctx.rules
    emails = {i.email for i in live if i.email and not rules.is_role_address(i.email)}
    phones = {i.phone for i in live if i.phone}
    email_hits: dict[str, set[int]] = defaultdict(set)
    for email, customer in select_in(conn, _EMAIL_HOLDERS_SQL, emails):
        email_hits[email].add(customer)
    phone_hits: dict[str, set[tuple[int, str | None]]] = defaultdict(set)
    for phone, customer, email in select_in(conn, _PHONE_HOLDERS_SQL, phones):
        phone_hits[phone].add((customer, email))
    holders = {p: len({c for c, _ in hits}) for p, hits in phone_hits.items()}

    Node = tuple[str, int]
    sets: UnionFind[Node] = UnionFind()
    page_email: dict[str, Node] = {}
    page_phone: dict[str, list[tuple[Node, str | None]]] = defaultdict(list)
    nodes: list[Node] = []
    for index, item in enumerate(live):
        node: Node = ("c", item.old_customer) if item.old_customer else ("p", index)
        nodes.append(node)
        sets.add(node)
        if item.email and item.email in emails:
            for customer in email_hits.get(item.email, ()):
                sets.union(node, ("c", customer))
            if item.email in page_email:
                sets.union(node, page_email[item.email])
            else:
                page_email[item.email] = node
        if item.phone and holders.get(item.phone, 0) < rules.max_customers_per_phone:
            for customer, other in phone_hits.get(item.phone, ()):
                if not _emails_disagree(item.email, other):
                    sets.union(node, ("c", customer))
            for other_node, other in page_phone[item.phone]:
                if not _emails_disagree(item.email, other):
                    sets.union(node, other_node)
            page_phone[item.phone].append((node, item.email))

    groups = sets.groups()
    known_ids = {n[1] for g in groups for n in g if n[0] == "c"}
    created: dict[int, datetime] = {}
    for batch in chunks(known_ids):
        created.update(
            conn.execute(
                select(customer_t.c.id, customer_t.c.created_at).where(customer_t.c.id.in_(batch))
            ).all()
        )
    root_customer: dict[Node, int] = {}
    fresh: list[tuple[Node, list[_Incoming]]] = []
    for group in groups:
        customers = sorted((n[1] for n in group if n[0] == "c"), key=lambda c: (created[c], c))
        root = sets.find(group[0])
        if not customers:
            members = [live[n[1]] for n in group]
            fresh.append((root, members))
            continue
        survivor, losers = customers[0], customers[1:]
        root_customer[root] = survivor
        if losers:
            merge_customers(conn, survivor, losers, reason="shared email or phone", now=ctx.now)
            result.merges += len(losers)
        result.dirty_customers.add(survivor)

    if fresh:
        rows = []
        for _, members in fresh:
            fields = survivor_fields(
                [m.linked(ctx.source) for m in members], ctx.rules.source_priority
            )
            born = earliest(m.record.created_at for m in members) or ctx.now
            rows.append({**fields, "created_at": born, "updated_at": ctx.now})
        ids = allocate_ids(conn, customer_t, len(rows))
        bulk_insert(conn, customer_t, [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
        for (root, _), customer_id in zip(fresh, ids, strict=True):
            root_customer[root] = customer_id
            result.dirty_customers.add(customer_id)
            result.created_customers.add(customer_id)
    for item, node in zip(live, nodes, strict=True):
        item.customer = root_customer[sets.find(node)]


def _emails_disagree(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """Reserve ``count`` ids for bulk inserts (one statement instead of one per row).

    PostgreSQL hands them out from the column's sequence; SQLite has a single writer
    (and the page writer holds its lock), so the ids after the current maximum are free.
    """
    if conn.dialect.name == "postgresql":
        sequence = func.pg_get_serial_sequence(table.name, "id")
        rows = conn.execute(
            select(func.nextval(sequence)).select_from(func.generate_series(1, count))
        )
        return [int(i) for i in rows.scalars()]
    start = int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one())
    return list(range(start + 1, start + count + 1))


def merge_customers(
    conn: Connection, survivor: int, losers: Sequence[int], *, reason: str, now: datetime
) -> None:
    """Fold ``losers`` into ``survivor``: move everything they own, keep a merge record."""
    for table in (identity_t, order_t, response_t, transition_t, push_t):
        conn.execute(
            update(table).where(table.c.customer_id.in_(losers)).values(customer_id=survivor)
        )
    conn.execute(delete(state_t).where(state_t.c.customer_id.in_(losers)))
    conn.execute(
        insert(merge_t),
        [{"survivor_id": survivor, "merged_id": m, "reason": reason, "at": now} for m in losers],
    )
    conn.execute(delete(customer_t).where(customer_t.c.id.in_(losers)))


def refresh_customers(conn: Connection, customer_ids: set[int], ctx: IdentityContext) -> None:
    """Recompute customers' fields from their linked records and mark them changed."""
    if not customer_ids:
        return
    linked: dict[int, list[LinkedRecord]] = defaultdict(list)
    for batch in chunks(customer_ids):
        for row in conn.execute(
            select(
                identity_t.c.customer_id, identity_t.c.source, identity_t.c.source_updated_at,
                identity_t.c.source_created_at, identity_t.c.email, identity_t.c.phone,
                identity_t.c.first_name, identity_t.c.last_name, identity_t.c.marketing_consent,
                identity_t.c.acquisition_channel,
            ).where(identity_t.c.customer_id.in_(batch), identity_t.c.deleted_at.is_(None))
        ):  # fmt: skip
            customer_id, source, updated, born, email, phone, first, last, consent, channel = row
            linked[customer_id].append(
                LinkedRecord(source, updated, born, email, phone, first, last, consent, channel)
            )
    created: dict[int, datetime] = {}
    for batch in chunks(customer_ids):
        created.update(
            conn.execute(
                select(customer_t.c.id, customer_t.c.created_at).where(customer_t.c.id.in_(batch))
            ).all()
        )
    rows = []
    for customer_id in customer_ids:
        if customer_id not in created:
            continue  # merged away in this page
        records = linked.get(customer_id, [])
        fields = survivor_fields(records, ctx.rules.source_priority)
        born = earliest([created[customer_id], *(r.created_at for r in records)])
        rows.append({**fields, "created_at": born, "updated_at": ctx.now, "id": customer_id})
    bulk_update(conn, customer_t, rows)


def _note_tag_drift(
    conn: Connection, ctx: IdentityContext, records: Mapping[str, ContactRecord]
) -> int:
    """Record the owned tags the tool really shows where they differ from the last push.

    Someone may remove ``clm:stage:vip`` by hand, or type an owned-looking tag. The push
    state says what the tool has, so it takes the observed owned tags, and the next plan
    puts back what the hub wants (the safety valve still holds a mass change). A record's
    content hash leaves owned tags out, so this check also runs on unchanged records.
    """
    owned = f"{ctx.tag_prefix}:"
    drifted = []
    for ext, tags in select_in(conn, _PUSHED_TAGS_SQL, records, (ctx.source,)):
        record = records[ext]
        if record.deleted:
            continue
        pushed = json.loads(tags) if isinstance(tags, str) else list(tags or [])
        seen = sorted(t for t in record.tags if t.startswith(owned))
        if seen != sorted(t for t in pushed if t.startswith(owned)):
            drifted.append({"c": ctx.source, "e": ext, "t": seen})
    if drifted:
        conn.execute(
            update(push_t)
            .where(push_t.c.connector == bindparam("c"), push_t.c.external_id == bindparam("e"))
            .values(tags=bindparam("t")),
            drifted,
        )
    return len(drifted)


def _learns_email(stored: str, digest: str, email: str | None) -> bool:
    """Whether a placeholder reference brings news: a placeholder that gets an email now."""
    return email is not None and is_placeholder(stored) and stored != digest


def placeholders_to_write(
    conn: Connection, ctx: IdentityContext, references: Mapping[str, str | None]
) -> tuple[dict[str, int | None], list[ContactRecord]]:
    """For the people orders or answers refer to (reference -> normalised email on the
    record): the customers of those already linked, and the placeholder records to write
    for the rest (unknown references, and placeholders that now learn an email)."""
    customers: dict[str, int | None] = {}
    for ext, customer, digest in select_in(conn, _PLACEHOLDER_SQL, references, (ctx.source,)):
        email = references[ext]
        # Most references are real contacts: only a placeholder's hash is worth computing.
        if email is not None and is_placeholder(digest) and digest != placeholder_hash(email):
            continue
        customers[ext] = customer
    records = [
        ContactRecord(external_id=ext, email=email)
        for ext, email in references.items()
        if ext not in customers
    ]
    return customers, records


def known_identities(
    conn: Connection, source: str, external_ids: Iterable[str]
) -> dict[str, int | None]:
    """The customer of each already-known record of ``source`` among ``external_ids``."""
    return dict(select_in(conn, _CUSTOMER_OF_SQL, external_ids, (source,)))


def mark_dirty(conn: Connection, customer_ids: set[int], now: datetime) -> None:
    """Note that customers' data changed, so stages are recomputed for them.

    A customer whose change is already pending (changed after its stage was last
    computed, or never computed) is left alone: no write for every order of a big page.
    """
    stale = select_in(conn, _COMPUTED_SQL, customer_ids)
    bulk_update(conn, customer_t, [{"updated_at": now, "id": customer} for (customer,) in stale])
