"""Shopify's search syntax (``query:`` arguments), as far as the simulator honours it.

Terms are ``field:value`` with optional comparators (``> >= < <=``), joined by ``AND`` or
spaces. Time fields compare as instants, except that an exact time without a comparator
matches the whole day (a documented quirk). Unknown fields, bad values and connectives the
simulator does not model are ignored with a warning, as Shopify does in
``extensions.search``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .sim_state import SimCustomer, SimOrder

__all__ = ["Record", "Term", "matcher", "parse_search"]


# -- search syntax ------------------------------------------------------------------------

_TERM = re.compile(
    r"""\s*(?:
        (?P<connective>AND|OR|NOT)(?=\s|$)
      | (?P<paren>[()])
      | (?P<negate>-)?(?P<field>[a-z_]+):\s*(?P<comparator>>=|<=|>|<)?
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s()]+)
      | (?P<word>[^\s()]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Term:
    """One ``field:[comparator]value`` term."""

    field: str
    comparator: str | None
    value: str


def parse_search(text: str) -> tuple[list[Term], list[dict[str, object]]]:
    """The AND-ed terms of a search string, and warnings for what is ignored."""
    terms: list[Term] = []
    warnings: list[dict[str, object]] = []
    position = 0
    while position < len(text):
        match = _TERM.match(text, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        if match.group("connective") == "AND":
            continue
        if match.group("connective") or match.group("paren") or match.group("negate"):
            warnings.append(
                {"field": None, "message": "The simulator only supports terms joined by AND."}
            )
            continue
        if match.group("word"):
            warnings.append(
                {"field": "default", "message": "Free-text search is not simulated; ignored."}
            )
            continue
        value = match.group("value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        terms.append(Term(match.group("field"), match.group("comparator"), value))
    return terms, warnings


def _parse_time(value: str, now: datetime) -> datetime | None:
    if value == "now":
        return now
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _compare(left: object, comparator: str | None, right: object) -> bool:
    if comparator is None:
        return left == right
    if not isinstance(left, int | datetime) or type(left) is not type(right):
        return False
    if comparator == ">=":
        return left >= right  # type: ignore[operator]
    if comparator == "<=":
        return left <= right  # type: ignore[operator]
    if comparator == ">":
        return left > right  # type: ignore[operator]
    return left < right  # type: ignore[operator]


Record = SimCustomer | SimOrder
_TIME_FIELDS: dict[str, dict[str, Callable[[Record], datetime | None]]] = {
    "customers": {
        "updated_at": lambda r: r.updated_at,
        "customer_date": lambda r: r.created_at,
    },
    "orders": {
        "updated_at": lambda r: r.updated_at,
        "created_at": lambda r: r.created_at,
        "processed_at": lambda r: r.processed_at if isinstance(r, SimOrder) else None,
    },
}


def matcher(root: str, term: Term, now: datetime) -> Callable[[Record], bool] | dict[str, object]:
    """A predicate for one term, or a warning when Shopify would ignore the term."""
    time_fields = _TIME_FIELDS[root]
    if term.field in time_fields:
        at = _parse_time(term.value, now)
        if at is None:
            return {"field": term.field, "message": f"Invalid time value {term.value!r}."}
        read = time_fields[term.field]
        if term.comparator is None:
            # An exact time matches the whole day (documented quirk).
            return lambda r: (t := read(r)) is not None and t.date() == at.date()
        comparator = term.comparator
        return lambda r: (t := read(r)) is not None and _compare(t, comparator, at)
    if term.field in ("id", "customer_id") and (root == "orders" or term.field == "id"):
        try:
            number = int(term.value)
        except ValueError:
            return {"field": term.field, "message": f"Invalid id value {term.value!r}."}
        id_comparator = term.comparator
        if term.field == "id":
            return lambda r: _compare(r.id, id_comparator, number)
        return lambda r: isinstance(r, SimOrder) and r.customer_id == number
    if term.field == "email":
        wanted = term.value.lower()
        return lambda r: (r.email or "").lower() == wanted
    if term.field in ("tag", "tag_not"):
        wanted_tags = {t.strip().lower() for t in term.value.split(",") if t.strip()}
        negate = term.field == "tag_not"
        return lambda r: bool(wanted_tags & {t.lower() for t in r.tags}) != negate
    if root == "orders" and term.field == "test":
        flag = term.value.lower() == "true"
        return lambda r: isinstance(r, SimOrder) and r.test == flag
    if root == "orders" and term.field == "financial_status":
        status = term.value.lower()
        return lambda r: isinstance(r, SimOrder) and (r.financial_status or "").lower() == status
    return {"field": term.field, "message": "Invalid search field for this query."}
