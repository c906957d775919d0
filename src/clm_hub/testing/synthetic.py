"""A deterministic in-process data source, for engine tests, crash tests and benchmarks.

``Synthetic`` is a real connector (same contract as any plugin) that serves generated
contacts, orders and survey answers without a network and without a rate limit, in
pages sorted by ``updated_at``, honouring the ``updated_since`` cursor. Everything is a
pure function of the settings, so two runs with the same settings see the same data, and
nothing is held in memory beyond the current page.

Load it with ``build_plugin_registry(extra={"synthetic": clm_hub.testing.synthetic})`` or
a ``plugins_dir`` file containing ``from clm_hub.testing.synthetic import register_connectors``.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import ClassVar

from pydantic import Field

from clm_hub import (
    Capability,
    Connector,
    ConnectorSettings,
    ContactRecord,
    OrderRecord,
    OrderStatus,
    Page,
    RegisterConnector,
    StreamCursor,
    SurveyResponseRecord,
    hookimpl,
    parse_page,
)
from clm_hub.errors import UpstreamError
from clm_hub.records import R

__all__ = ["Synthetic", "SyntheticSettings", "register_connectors"]

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
Row = dict[str, object]


class SyntheticSettings(ConnectorSettings):
    """What to generate. Emails are ``person<i>@example.com`` for every source, so two
    synthetic connectors with overlapping ``first_person`` ranges share people."""

    seed: int = 1
    contacts: int = Field(default=100, ge=0)
    orders: int = Field(default=300, ge=0)
    survey_responses: int = Field(default=0, ge=0)
    first_person: int = Field(default=0, ge=0)
    id_prefix: str = "s"
    page_size: int = Field(default=100, ge=1)
    bad_every: int = Field(default=0, ge=0)
    """Every n-th generated row is malformed (0: none), to exercise rejection."""
    edit_round: int = Field(default=0, ge=0)
    """Each round changes a tenth of the contacts and orders, later in time."""
    fail_after_pages: int | None = None
    """Raise an upstream error after this many pages of each stream (a tool going down)."""
    page_delay: float = 0.0
    """Seconds to wait before each page (a slow tool)."""


def _h(*values: int) -> int:
    """A cheap deterministic hash of integers (no global random state)."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = ((x ^ v) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


class Synthetic(Connector[SyntheticSettings]):
    """Generated contacts, orders and NPS answers, paged by ``updated_at``."""

    name = "synthetic"
    version = "1.0.0"
    settings_model = SyntheticSettings
    default_base_url = "http://synthetic.invalid"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CONTACTS, Capability.ORDERS, Capability.SURVEY_RESPONSES}
    )

    def _edited(self, kind: int, i: int) -> int:
        """How many edit rounds touched row ``i`` (0 when untouched)."""
        s = self.settings
        return sum(1 for r in range(1, s.edit_round + 1) if _h(s.seed, kind, i, r) % 10 == 0)

    def _stamp(self, kind: int, i: int, total: int) -> datetime:
        rounds = self._edited(kind, i)
        base = EPOCH + timedelta(seconds=i * 600 // max(1, total // 1000 + 1))
        return base + timedelta(days=400 * rounds) if rounds else base

    def _contact(self, i: int) -> Row:
        s = self.settings
        person = s.first_person + i
        edits = self._edited(1, i)
        h = _h(s.seed, 1, person)
        row: Row = {
            "id": f"{s.id_prefix}c{person}",
            "email": f"  Person{person}@Example.com "
            if h % 3 == 0
            else f"person{person}@example.com",
            "phone": f"+1 415 555 {person % 10000:04d}" if h % 5 == 0 else None,
            "first_name": f"First{person}" + (f" v{edits}" if edits else ""),
            "last_name": f"Last{person}",
            "created_at": (EPOCH - timedelta(days=h % 700)).isoformat(),
            "updated_at": self._stamp(1, i, s.contacts).isoformat(),
        }
        if s.bad_every and (i + 1) % s.bad_every == 0:
            row["updated_at"] = "not a timestamp"
        return row

    def _order(self, j: int) -> Row:
        s = self.settings
        h = _h(s.seed, 2, j)
        customer = s.first_person + (h % max(1, s.contacts))
        status = OrderStatus.PAID
        if h % 20 == 0:
            status = OrderStatus.REFUNDED
        elif h % 33 == 0:
            status = OrderStatus.CANCELLED
        row: Row = {
            "id": f"{s.id_prefix}o{j}",
            "customer": f"{s.id_prefix}c{customer}",
            "email": f"person{customer}@example.com",
            "placed_at": (EPOCH + timedelta(minutes=j * 7 % 500_000)).isoformat(),
            "updated_at": self._stamp(2, j, s.orders).isoformat(),
            "total": f"{(h >> 8) % 20000 / 100 + 1 + self._edited(2, j):.2f}",
            "currency": "USD",
            "status": status.value,
        }
        if s.bad_every and (j + 1) % s.bad_every == 0:
            row["total"] = "-5"
        return row

    def _response(self, k: int) -> Row:
        s = self.settings
        h = _h(s.seed, 3, k)
        customer = s.first_person + (h % max(1, s.contacts))
        return {
            "id": f"{s.id_prefix}r{k}",
            "customer": f"{s.id_prefix}c{customer}",
            "score": h % 11,
            "answered_at": (EPOCH + timedelta(hours=k)).isoformat(),
        }

    async def _pages(
        self,
        count: int,
        make: Callable[[int], Row],
        stamp_of: Callable[[int], datetime],
        convert: Callable[[Row], R],
        since: StreamCursor | None,
    ) -> AsyncIterator[Page[R]]:
        s = self.settings
        threshold = since.updated_since if since is not None else None
        order: Sequence[int]
        if s.edit_round == 0:
            # Stamps grow with the index: no sort, and memory stays flat at any size.
            first = 0 if threshold is None else bisect_left(range(count), threshold, key=stamp_of)
            order = range(first, count)
        else:
            order = sorted(range(count), key=lambda i: (stamp_of(i), i))
            if threshold is not None:
                order = [i for i in order if stamp_of(i) >= threshold]
        for number, start in enumerate(range(0, len(order), s.page_size)):
            if s.fail_after_pages is not None and number >= s.fail_after_pages:
                raise UpstreamError(self.connector_id, "synthetic outage (503)", status_code=503)
            if s.page_delay:
                await asyncio.sleep(s.page_delay)
            indices = order[start : start + s.page_size]
            cursor = StreamCursor(updated_since=stamp_of(indices[-1]))
            rows = [make(i) for i in indices]
            yield parse_page(rows, convert, external_id=lambda r: str(r.get("id")), cursor=cursor)

    def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        total = self.settings.contacts
        return self._pages(
            total, self._contact, lambda i: self._stamp(1, i, total), _to_contact, since
        )

    def pull_orders(self, since: StreamCursor | None) -> AsyncIterator[Page[OrderRecord]]:
        total = self.settings.orders
        return self._pages(total, self._order, lambda i: self._stamp(2, i, total), _to_order, since)

    def pull_survey_responses(
        self, since: StreamCursor | None
    ) -> AsyncIterator[Page[SurveyResponseRecord]]:
        return self._pages(
            self.settings.survey_responses,
            self._response,
            lambda k: EPOCH + timedelta(hours=k),
            _to_response,
            since,
        )


def _to_contact(row: Row) -> ContactRecord:
    return ContactRecord(
        external_id=str(row["id"]),
        email=_opt(row["email"]),
        phone=_opt(row["phone"]),
        first_name=_opt(row["first_name"]),
        last_name=_opt(row["last_name"]),
        created_at=datetime.fromisoformat(str(row["created_at"])),
        updated_at=datetime.fromisoformat(str(row["updated_at"])),
    )


def _to_order(row: Row) -> OrderRecord:
    return OrderRecord(
        external_id=str(row["id"]),
        customer_external_id=str(row["customer"]),
        email=_opt(row["email"]),
        placed_at=datetime.fromisoformat(str(row["placed_at"])),
        updated_at=datetime.fromisoformat(str(row["updated_at"])),
        total=Decimal(str(row["total"])),
        currency=str(row["currency"]),
        status=OrderStatus(str(row["status"])),
    )


def _to_response(row: Row) -> SurveyResponseRecord:
    return SurveyResponseRecord(
        external_id=str(row["id"]),
        customer_external_id=str(row["customer"]),
        score=int(str(row["score"])),
        answered_at=datetime.fromisoformat(str(row["answered_at"])),
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def iter_people(settings: SyntheticSettings) -> Iterator[str]:
    """The normalised emails this source holds (for tests' expectations)."""
    for i in range(settings.contacts):
        yield f"person{settings.first_person + i}@example.com"


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    register(Synthetic)
