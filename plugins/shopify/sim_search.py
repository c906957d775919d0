"""Shopify's search syntax (``query:`` arguments), as far as the simulator honours it.

Terms are ``field:value`` with optional comparators (``> >= < <=``), joined by ``AND`` or
spaces; each becomes a SQL condition on the simulator's tables. Time fields compare as
instants, except that an exact time without a comparator matches the whole day (a
documented quirk). Unknown fields, bad values and connectives the simulator does not model
are ignored with a warning, as Shopify does in ``extensions.search``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from .sim_store import TAG_SEPARATOR

__all__ = ["Condition", "Term", "condition", "parse_search"]


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


Condition = tuple[str, tuple[object, ...]]
"""A SQL condition on the ``customers`` or ``orders`` table, and its parameters."""

_TIME_COLUMNS: dict[str, dict[str, str]] = {
    "customers": {"updated_at": "updated_at", "customer_date": "created_at"},
    "orders": {
        "updated_at": "updated_at",
        "created_at": "created_at",
        "processed_at": "processed_at",
    },
}
_COMPARATORS = (">=", "<=", ">", "<")


def condition(root: str, term: Term, now: datetime) -> Condition | dict[str, object]:
    """A term as a SQL condition, or a warning when Shopify would ignore the term."""
    columns = _TIME_COLUMNS[root]
    if term.field in columns:
        at = _parse_time(term.value, now)
        if at is None:
            return {"field": term.field, "message": f"Invalid time value {term.value!r}."}
        column = columns[term.field]
        if term.comparator is None:
            # An exact time matches the whole (UTC) day (documented quirk).
            day = datetime(at.year, at.month, at.day, tzinfo=UTC)
            start = int(day.timestamp())
            return f"({column} >= ? AND {column} < ?)", (start, start + 86_400)
        # Instants compare at the stored (second) precision, as datetimes would.
        second = int(at.timestamp() // 1)
        exact = at.timestamp() == second
        comparator = term.comparator
        if not exact and comparator in (">=", "<"):
            comparator = ">" if comparator == ">=" else "<="
        return f"{column} {comparator} ?", (second,)
    if term.field in ("id", "customer_id") and (root == "orders" or term.field == "id"):
        try:
            number = int(term.value)
        except ValueError:
            return {"field": term.field, "message": f"Invalid id value {term.value!r}."}
        if term.field == "id":
            assert term.comparator in (None, *_COMPARATORS)
            return f"id {term.comparator or '='} ?", (number,)
        return "customer_id = ?", (number,)
    if term.field == "email":
        wanted_email = term.value.lower()
        if not wanted_email:
            return "coalesce(email_key, '') = ''", ()
        return "email_key = ?", (wanted_email,)
    if term.field in ("tag", "tag_not"):
        wanted = [t.strip().lower() for t in term.value.split(",") if t.strip()]
        negate = "NOT " if term.field == "tag_not" else ""
        return f"{negate}has_tag(tags, ?)", (TAG_SEPARATOR.join(wanted),)
    if root == "orders" and term.field == "test":
        return "test = ?", (int(term.value.lower() == "true"),)
    if root == "orders" and term.field == "financial_status":
        return "lower(coalesce(financial_status, '')) = ?", (term.value.lower(),)
    return {"field": term.field, "message": "Invalid search field for this query."}
