"""What the page writer derives from a page before it touches the store.

Content hashes, normalised emails and phones, and the column values of orders and survey
answers are pure functions of a page and the hub's identity settings. Computing them is a
large share of ingesting a page, so a pull worker process does it next to the connector
(see ``pull_worker.py``) and hands over a ``PreparedPage``: the hub's process is left
with the lookups and the writes. Pages that arrive any other way (webhooks, connectors run
in the hub's process) are prepared by the writer itself, with the same functions.

A ``PreparedPage`` pickles compactly: orders and answers travel as driver-ready columns,
contacts as columns of their fields, timestamps and amounts as text (rebuilt without
validating again: they were validated once, by the same record class, in the worker).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Table

from clm_hub.identity import IdentityRules, normalise_email, normalise_phone
from clm_hub.linking import contact_hash, content_hash, order_t, response_t
from clm_hub.records import (
    ContactRecord,
    OrderRecord,
    OrderStatus,
    Page,
    Rejection,
    StreamCursor,
    SurveyResponseRecord,
)
from clm_hub.store.bulk import dialect_named, store_values

__all__ = [
    "PrepareRules",
    "PreparedContacts",
    "PreparedFacts",
    "PreparedPage",
    "combine",
    "prepare_contacts",
    "prepare_page",
]


@dataclass(frozen=True)
class PrepareRules:
    """The settings that preparing a page depends on (a worker gets a copy)."""

    rules: IdentityRules
    default_region: str | None
    tag_prefix: str
    store: str = "sqlite"
    """The store's driver name (``sqlite``, ``postgresql+psycopg``): column values are
    prepared as its driver takes them."""


@dataclass
class PreparedContacts:
    """Contacts with their normalised email and phone and their content hash."""

    records: list[ContactRecord]
    emails: list[str | None]
    phones: list[str | None]
    digests: list[str]

    def __reduce__(self) -> tuple[Any, ...]:
        columns = zip(*(r.__dict__.values() for r in self.records), strict=True)
        encoded = [_encode_column(list(c)) for c in columns]
        return (_contacts_from_columns, (encoded, self.emails, self.phones, self.digests))


_CONTACT_FIELDS = tuple(ContactRecord.model_fields)


def _contacts_from_columns(
    encoded: list[tuple[str, list[Any]]],
    emails: list[str | None],
    phones: list[str | None],
    digests: list[str],
) -> PreparedContacts:
    """Rebuild contacts validated by the same class in the worker, without validating
    again (``model_construct`` costs twice as much and would take any keys)."""
    new, set_attr, names = object.__new__, object.__setattr__, _CONTACT_FIELDS
    fields_set = set(names)
    records = []
    for row in zip(*(_decode_column(c) for c in encoded), strict=True):
        record = new(ContactRecord)
        set_attr(record, "__dict__", dict(zip(names, row, strict=True)))
        set_attr(record, "__pydantic_fields_set__", fields_set)
        set_attr(record, "__pydantic_extra__", None)
        set_attr(record, "__pydantic_private__", None)
        records.append(record)
    return PreparedContacts(records, emails, phones, digests)


# Pickling a datetime costs ~3 us and a Decimal ~2 us (they reduce through Python code),
# as much as the rest of a record: such columns travel as text. ISO text from
# pydantic-core's serialiser (one call a column) and ``datetime.fromisoformat`` give back
# the same instant; ``Decimal(str(x))`` is ``x``.
_DATETIMES: TypeAdapter[list[datetime | None]] = TypeAdapter(list[datetime | None])


def _encode_column(values: list[Any]) -> tuple[str, list[Any]]:
    first = next((v for v in values if v is not None), None)
    if isinstance(first, datetime):
        return "datetime", json.loads(_DATETIMES.dump_json(values, warnings=False))
    if isinstance(first, Decimal):
        return "decimal", [None if v is None else str(v) for v in values]
    return "", values


def _decode_column(encoded: tuple[str, list[Any]]) -> list[Any]:
    kind, values = encoded
    if kind == "datetime":
        parse = datetime.fromisoformat
        return [None if v is None else parse(v) for v in values]
    if kind == "decimal":
        return [None if v is None else Decimal(v) for v in values]
    return values


@dataclass
class PreparedFacts:
    """Orders or survey answers, column by column, keyed by external id."""

    external_ids: list[str]
    customer_external_ids: list[str | None]
    emails: list[str | None]
    """Normalised (``None`` where the record's email is not an address)."""
    digests: list[str]
    deleted: list[bool]
    values: dict[str, list[Any]] = field(default_factory=dict)
    """The table's own columns (``placed_at``, ``total`` ...), as the store's driver
    takes them (``store.bulk.store_values``)."""

    def __len__(self) -> int:
        return len(self.external_ids)

    def __reduce__(self) -> tuple[Any, ...]:
        encoded = {name: _encode_column(column) for name, column in self.values.items()}
        keys = (self.external_ids, self.customer_external_ids, self.emails, self.digests)
        return (_facts_from_columns, (*keys, self.deleted, encoded))


def _facts_from_columns(
    external_ids: list[str],
    customer_external_ids: list[str | None],
    emails: list[str | None],
    digests: list[str],
    deleted: list[bool],
    encoded: dict[str, tuple[str, list[Any]]],
) -> PreparedFacts:
    values = {name: _decode_column(column) for name, column in encoded.items()}
    return PreparedFacts(external_ids, customer_external_ids, emails, digests, deleted, values)


@dataclass
class PreparedPage:
    """A page ready for the writer: its records prepared, its cursor and rejections."""

    cursor: StreamCursor | None
    rejected: list[Rejection]
    contacts: PreparedContacts | None = None
    facts: PreparedFacts | None = None

    @property
    def records(self) -> int:
        if self.contacts is not None:
            return len(self.contacts.records)
        return 0 if self.facts is None else len(self.facts)


_STATUS_TEXT = {status: status.value for status in OrderStatus}  # faster than ``.value``


def _order_values(records: Sequence[OrderRecord]) -> dict[str, list[Any]]:
    return {
        "placed_at": [r.placed_at for r in records],
        "source_updated_at": [r.updated_at for r in records],
        "total": [r.total for r in records],
        "refunded": [r.refunded for r in records],
        "currency": [r.currency for r in records],
        "status": [_STATUS_TEXT[r.status] for r in records],
    }


def _response_values(records: Sequence[SurveyResponseRecord]) -> dict[str, list[Any]]:
    return {
        "survey_id": [r.survey_id for r in records],
        "score": [r.score for r in records],
        "answered_at": [r.answered_at for r in records],
        "comment": [r.comment for r in records],
    }


def _stored(table: Table, values: dict[str, list[Any]], store: str) -> dict[str, list[Any]]:
    dialect = dialect_named(store)
    return {
        name: list(store_values(table.c[name], column, dialect)) for name, column in values.items()
    }


def prepare_contacts(records: Sequence[ContactRecord], rules: PrepareRules) -> PreparedContacts:
    identity, region, prefix = rules.rules, rules.default_region, rules.tag_prefix
    return PreparedContacts(
        list(records),
        [normalise_email(r.email, identity) for r in records],
        [normalise_phone(r.phone, region) for r in records],
        [contact_hash(r, prefix) for r in records],
    )


def _prepare_facts(stream: str, records: Sequence[Any], rules: PrepareRules) -> PreparedFacts:
    identity = rules.rules
    if stream == "orders":
        values = _stored(order_t, _order_values(records), rules.store)
    else:
        values = _stored(response_t, _response_values(records), rules.store)
    return PreparedFacts(
        [r.external_id for r in records],
        [r.customer_external_id for r in records],
        [normalise_email(r.email, identity) for r in records],
        [content_hash(r) for r in records],
        [getattr(r, "deleted", False) for r in records],
        values,
    )


def prepare_page(stream: str, page: Page[Any], rules: PrepareRules) -> PreparedPage:
    """Everything the writer derives from ``page`` without the store."""
    records = list(page.records)
    prepared = PreparedPage(page.cursor, list(page.rejected))
    if stream == "contacts":
        prepared.contacts = prepare_contacts(records, rules)
    else:
        prepared.facts = _prepare_facts(stream, records, rules)
    return prepared


def combine(pages: Sequence[PreparedPage]) -> PreparedPage:
    """Consecutive pages of one stream as one (the cursor of the last that has one)."""
    if len(pages) == 1:
        return pages[0]
    cursor = next((p.cursor for p in reversed(pages) if p.cursor is not None), None)
    out = PreparedPage(cursor, [row for p in pages for row in p.rejected])
    contacts = [p.contacts for p in pages if p.contacts is not None]
    if contacts:
        out.contacts = PreparedContacts(
            [r for c in contacts for r in c.records],
            [e for c in contacts for e in c.emails],
            [p for c in contacts for p in c.phones],
            [d for c in contacts for d in c.digests],
        )
    facts = [p.facts for p in pages if p.facts is not None and len(p.facts)]
    if facts:
        names = list(facts[0].values)
        out.facts = PreparedFacts(
            [x for f in facts for x in f.external_ids],
            [x for f in facts for x in f.customer_external_ids],
            [x for f in facts for x in f.emails],
            [x for f in facts for x in f.digests],
            [x for f in facts for x in f.deleted],
            {name: [x for f in facts for x in f.values[name]] for name in names},
        )
    return out
