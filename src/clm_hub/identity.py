"""Recognising one person across tools: normalised keys, over-merge guards, survivorship.

Join keys are the normalised email and the E.164 phone number (plus the tool's own id,
which always links a record to the customer it was linked to before). Two guards keep
distinct people apart:

- a **role address** (``info@``, ``sales@`` ...) is shared by many people, so it never
  joins two records;
- a **phone** joins two records only when it is held by fewer than
  ``max_customers_per_phone`` customers and the records' emails do not disagree (a family
  or a company switchboard shares one number, not one identity).

When a new link joins customers that were separate, they are merged: the survivor is the
one created first (ties: lowest id). Each customer field is then taken from the linked
records by survivorship: a non-empty value from the highest-priority source
(``source_priority``), else the most recently updated record's non-empty value.

Everything here is pure; the ingest module feeds it rows and writes the results.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Generic, TypeVar

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_ROLE_ADDRESSES",
    "IdentityRules",
    "LinkedRecord",
    "UnionFind",
    "normalise_email",
    "normalise_phone",
    "survivor_fields",
]

DEFAULT_ROLE_ADDRESSES = (
    "admin", "billing", "contact", "hello", "help", "info", "mail", "marketing", "no-reply",
    "noreply", "office", "orders", "sales", "service", "shop", "support", "team",
)  # fmt: skip
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


class IdentityRules(BaseModel):
    """The ``[identity]`` settings table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gmail_dots: bool = False
    """Treat ``j.doe@gmail.com`` and ``jdoe@gmail.com`` as one address (Gmail ignores dots)."""
    strip_plus_tags: bool = False
    """Treat ``ann+shop@x.com`` as ``ann@x.com``. Off by default: not every provider agrees."""
    role_addresses: tuple[str, ...] = DEFAULT_ROLE_ADDRESSES
    """Local parts that name a role, not a person; they never join two records."""
    max_customers_per_phone: int = Field(default=3, ge=1)
    """A phone already held by this many customers is no longer a join key."""
    source_priority: tuple[str, ...] = ()
    """Connector ids, most trusted first, for picking customer fields; others come after."""

    def is_role_address(self, email: str) -> bool:
        return email.partition("@")[0] in self.role_addresses


def normalise_email(raw: str | None, rules: IdentityRules | None = None) -> str | None:
    """Trim, NFKC-normalise and case-fold an email; ``None`` when it is not an address."""
    if raw is None:
        return None
    value = unicodedata.normalize("NFKC", raw).strip().casefold()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or " " in value:
        return None
    if rules is not None:
        if rules.strip_plus_tags:
            local = local.partition("+")[0] or local
        if rules.gmail_dots and domain in _GMAIL_DOMAINS:
            local = local.replace(".", "")
            domain = "gmail.com"
    return f"{local}@{domain}"


def normalise_phone(raw: str | None, default_region: str | None = None) -> str | None:
    """The E.164 form of a phone number, or ``None`` when it is not a valid number.

    Numbers without a country code need ``default_region``; without one they are dropped
    rather than guessed.
    """
    if not raw or not raw.strip():
        return None
    # Parsing and validating costs ~50-100 µs, and a tool's numbers repeat (households,
    # the same person in several tools, re-read pages). Separators carry no meaning for
    # the parser, so "+1 415-555 0123" and "+14155550123" share one cached answer.
    compact = raw.translate(_SEPARATORS)
    return _e164(compact if _PLAIN_NUMBER.fullmatch(compact) else raw, default_region)


_SEPARATORS = str.maketrans("", "", " -.()/\t")
_PLAIN_NUMBER = re.compile(r"\+?[0-9]{1,20}")


@lru_cache(maxsize=1 << 16)
def _e164(raw: str, default_region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


N = TypeVar("N", bound=Hashable)


class UnionFind(Generic[N]):
    """Disjoint sets, for grouping records and customers that turn out to be one person."""

    def __init__(self) -> None:
        self._parent: dict[N, N] = {}

    def add(self, node: N) -> None:
        self._parent.setdefault(node, node)

    def find(self, node: N) -> N:
        self.add(node)
        root = node
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[node] != root:  # path compression
            self._parent[node], node = root, self._parent[node]
        return root

    def union(self, a: N, b: N) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[rb] = ra

    def groups(self) -> list[list[N]]:
        """Every set, as a list of its members."""
        out: dict[N, list[N]] = {}
        for node in self._parent:
            out.setdefault(self.find(node), []).append(node)
        return list(out.values())


@dataclass(frozen=True)
class LinkedRecord:
    """One tool's record of a customer, as survivorship sees it."""

    source: str
    updated_at: datetime | None
    created_at: datetime | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    marketing_consent: bool | None
    acquisition_channel: str | None


SURVIVOR_FIELDS = (
    "email", "phone", "first_name", "last_name", "marketing_consent", "acquisition_channel",
)  # fmt: skip


def survivor_fields(
    records: Sequence[LinkedRecord], source_priority: Sequence[str] = ()
) -> dict[str, object]:
    """The customer's fields from its linked records, by the documented survivorship."""
    if len(records) == 1:  # a new person seen once: every page of new contacts is full of them
        [only] = records
        return {name: None if (v := getattr(only, name)) == "" else v for name in SURVIVOR_FIELDS}
    rank = {source: i for i, source in enumerate(source_priority)}
    unranked = len(rank)

    def order(record: LinkedRecord) -> tuple[int, float]:
        stamp = record.updated_at.timestamp() if record.updated_at else float("-inf")
        return (rank.get(record.source, unranked), -stamp)

    ordered = sorted(records, key=order)
    fields: dict[str, object] = {}
    for name in SURVIVOR_FIELDS:
        fields[name] = next(
            (v for r in ordered if (v := getattr(r, name)) is not None and v != ""), None
        )
    return fields


def earliest(values: Iterable[datetime | None]) -> datetime | None:
    """The earliest of the known timestamps."""
    known = [v for v in values if v is not None]
    return min(known) if known else None


def count_by(pairs: Iterable[tuple[str, int]]) -> Mapping[str, int]:
    """How many distinct customers hold each key."""
    holders: dict[str, set[int]] = {}
    for key, customer in pairs:
        holders.setdefault(key, set()).add(customer)
    return {key: len(ids) for key, ids in holders.items()}
