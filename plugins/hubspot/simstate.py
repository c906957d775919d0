"""The simulated HubSpot portal's data: what tests and the demo seed and inspect.

``HubSpotState`` holds contacts, deals and orders with their properties and timestamps,
associations, contact property definitions, credentials (private-app tokens, OAuth apps and
issued tokens), rate-limit counters and a log of every request. The simulator app
(``simulator.py``) serves it over HTTP; its handlers and the test thread share it under
``lock``. CRM records are rows of a SQLite file (a demo's portal of millions stays off the
heap): ``objects[kind]`` reads them as ``SimObject``s, and ``touch`` writes one back.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    MutableSequence,
    ValuesView,
)
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clm_hub.testing.simfile import SimulatorFile

__all__ = [
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_TOKEN",
    "OBJECT_TYPES",
    "Admission",
    "HubSpotState",
    "RateLimits",
    "RecordedRequest",
    "SimObject",
    "SimOption",
    "SimProperty",
    "format_timestamp",
]

DEFAULT_TOKEN = "pat-na1-00000000-0000-4000-8000-000000000001"
DEFAULT_CLIENT_SECRET = "sim-app-client-secret-0001"
OBJECT_TYPES: Mapping[str, str] = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
    "orders": "orders",
    "order": "orders",
}
MODIFIED_PROPERTY: Mapping[str, str] = {
    "contacts": "lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "orders": "hs_lastmodifieddate",
}
CREATED_PROPERTY: Mapping[str, str] = {
    "contacts": "createdate",
    "deals": "createdate",
    "orders": "hs_createdate",
}
# Association type ids: deal->contact 3 and contact->deal 4 are documented; the order ones
# are not (hubspot.md section 3) and made up here.
ASSOCIATION_TYPE_IDS: Mapping[tuple[str, str], int] = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("orders", "contacts"): 507,
    ("contacts", "orders"): 508,
}
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


def format_timestamp(value: datetime) -> str:
    """HubSpot's datetime format: ISO-8601 in UTC with milliseconds and ``Z``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


@dataclass(slots=True, weakref_slot=True)
class SimObject:
    """One CRM record; ``properties`` hold HubSpot's string values (a row read from the
    portal's file: ``HubSpotState.touch`` writes changes back)."""

    id: int
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived: bool = False


@dataclass
class SimOption:
    label: str
    value: str
    display_order: int
    hidden: bool = False


@dataclass
class SimProperty:
    """A contact property definition."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[SimOption] = field(default_factory=list)
    read_only: bool = False

    @property
    def option_values(self) -> list[str]:
        return [option.value for option in self.options]


@dataclass(frozen=True)
class RateLimits:
    """The simulated account's limits (hubspot.md section 5)."""

    burst_limit: int = 100
    burst_window_s: float = 10.0
    daily_limit: int = 250_000
    search_per_second: int = 5
    enforce: bool = True


@dataclass(frozen=True)
class RecordedRequest:
    """A request the simulator answered, for tests to inspect."""

    method: str
    path: str
    query: str
    body: bytes
    status: int


@dataclass(frozen=True)
class Admission:
    """The rate limiter's verdict on one request."""

    policy: str | None
    """``None`` when admitted, else the 429's ``policyName``."""
    headers: Mapping[str, str]


def _default_properties() -> dict[str, SimProperty]:
    def text(name: str, *, read_only: bool = False) -> SimProperty:
        return SimProperty(name, name, "string", "text", "contactinformation", read_only=read_only)

    props = {
        name: text(name)
        for name in ("email", "firstname", "lastname", "phone", "mobilephone", "hs_email_optout")
    }
    for name in ("createdate", "lastmodifieddate", "hs_object_id"):
        props[name] = text(name, read_only=True)
    props["lifecyclestage"] = SimProperty(
        "lifecyclestage",
        "Lifecycle stage",
        "enumeration",
        "radio",
        "contactinformation",
        options=[
            SimOption(value.capitalize(), value, order)
            for order, value in enumerate(LIFECYCLE_STAGES)
        ],
    )
    return props


class HubSpotState:
    """Everything the simulated portal knows. Thread-safe through ``lock``."""

    def __init__(
        self,
        *,
        private_app_tokens: Iterable[str] = (DEFAULT_TOKEN,),
        client_secret: str = DEFAULT_CLIENT_SECRET,
        rate_limits: RateLimits | None = None,
        search_result_cap: int = 10_000,
        invalid_option_rejects_batch: bool = True,
        token_lifetime_s: int = 1800,
        timeout_delay_s: float = 30.0,
        portal_id: int = 1234567,
        clock: Callable[[], datetime] | None = None,
        log_limit: int | None = None,
        path: Path | None = None,
    ) -> None:
        """``log_limit`` bounds ``requests`` to the newest entries (the demo sets it so a long
        run does not keep every request body); None keeps all. ``path`` is the SQLite file
        for the records (replaced if there); None: a temporary file, removed with the
        state."""
        self.lock = threading.RLock()
        self.private_app_tokens = set(private_app_tokens)
        self.client_secret = client_secret
        """The app's client secret: signs webhook deliveries (``simulator.signed_delivery``)."""
        self.rate_limits = rate_limits or RateLimits()
        self.search_result_cap = search_result_cap
        self.invalid_option_rejects_batch = invalid_option_rejects_batch
        """True: one invalid enumeration value fails a batch update with 400 (as HubSpot
        does); False: it is reported per record in a 207."""
        self.token_lifetime_s = token_lifetime_s
        self.timeout_delay_s = timeout_delay_s
        self.portal_id = portal_id
        self._clock = clock or (lambda: datetime.now(UTC))
        self._file = SimulatorFile(path, name="hubspot", cache_kib=8192)
        self._db = self._file.db
        self._db.executescript(_SCHEMA)
        self.objects: dict[str, ObjectTable] = {
            t: ObjectTable(self._db, self.lock, t) for t in MODIFIED_PROPERTY
        }
        self.associations: dict[tuple[str, str], dict[int, set[int]]] = {}
        self.properties: dict[str, SimProperty] = _default_properties()
        self.groups: dict[str, str] = {"contactinformation": "Contact information"}
        self.oauth_apps: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.access_tokens: dict[str, float] = {}
        self.requests: MutableSequence[RecordedRequest] = (
            [] if log_limit is None else deque(maxlen=log_limit)
        )
        self.throttled: Counter[str] = Counter()
        self.daily_used = 0
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()
        self._next_id = 100

    # -- time and ids ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- storage --------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the lock and one transaction around many writes (seeding a large portal)."""
        with self.lock, self._file.batch():
            yield

    def close(self) -> None:
        """Close the records' file (a temporary one is removed)."""
        with self.lock:
            self._file.close()

    # -- seeding --------------------------------------------------------------------------

    def add_object(
        self,
        object_type: str,
        properties: Mapping[str, str],
        *,
        modified_at: datetime | None = None,
        created_at: datetime | None = None,
        object_id: int | None = None,
    ) -> str:
        """Create a record of ``contacts``, ``deals`` or ``orders``; returns its id."""
        kind = OBJECT_TYPES[object_type]
        with self.lock:
            ident = object_id if object_id is not None else self._new_id()
            self._next_id = max(self._next_id, ident)
            modified = modified_at or self.now()
            created = created_at or modified
            props = dict(properties)
            stamp = format_timestamp(created)
            props[CREATED_PROPERTY[kind]] = stamp
            # Seeded records are often created and modified at once: share the string.
            props[MODIFIED_PROPERTY[kind]] = (
                stamp if modified == created else format_timestamp(modified)
            )
            props["hs_object_id"] = str(ident)
            self.objects[kind][ident] = SimObject(ident, props, created, modified)
            return str(ident)

    def add_contact(
        self,
        email: str | None = None,
        *,
        firstname: str | None = None,
        lastname: str | None = None,
        properties: Mapping[str, str] | None = None,
        modified_at: datetime | None = None,
        created_at: datetime | None = None,
    ) -> str:
        props = {
            k: v
            for k, v in {"email": email, "firstname": firstname, "lastname": lastname}.items()
            if v is not None
        }
        props.update(properties or {})
        return self.add_object("contacts", props, modified_at=modified_at, created_at=created_at)

    def add_deal(
        self,
        *,
        amount: str | None,
        currency: str | None = "EUR",
        stage: str = "closedwon",
        closed_at: datetime | None = None,
        contact_id: str | None = None,
        properties: Mapping[str, str] | None = None,
        modified_at: datetime | None = None,
    ) -> str:
        won = stage == "closedwon"
        props = {
            "dealname": "Order",
            "dealstage": stage,
            "pipeline": "default",
            "hs_is_closed_won": "true" if won else "false",
            "hs_is_closed": "true" if stage in ("closedwon", "closedlost") else "false",
        }
        if amount is not None:
            props["amount"] = amount
        if currency is not None:
            props["deal_currency_code"] = currency
        if closed_at is not None:
            props["closedate"] = format_timestamp(closed_at)
        props.update(properties or {})
        ident = self.add_object("deals", props, modified_at=modified_at)
        if contact_id is not None:
            self.associate("deals", ident, "contacts", contact_id)
        return ident

    def add_order(
        self,
        *,
        total: str,
        currency: str = "EUR",
        contact_id: str | None = None,
        properties: Mapping[str, str] | None = None,
        modified_at: datetime | None = None,
    ) -> str:
        props = {"hs_order_name": "Order", "hs_total_price": total, "hs_currency_code": currency}
        props.update(properties or {})
        ident = self.add_object("orders", props, modified_at=modified_at)
        if contact_id is not None:
            self.associate("orders", ident, "contacts", contact_id)
        return ident

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Link two records (both directions, as HubSpot does)."""
        a, b = OBJECT_TYPES[from_type], OBJECT_TYPES[to_type]
        with self.lock:
            self.associations.setdefault((a, b), {}).setdefault(int(from_id), set()).add(int(to_id))
            self.associations.setdefault((b, a), {}).setdefault(int(to_id), set()).add(int(from_id))

    def update_object(
        self,
        object_type: str,
        object_id: str,
        properties: Mapping[str, str],
        *,
        modified_at: datetime | None = None,
    ) -> None:
        """Change properties as a HubSpot user would; bumps the last-modified date."""
        kind = OBJECT_TYPES[object_type]
        with self.lock:
            obj = self.objects[kind][int(object_id)]
            obj.properties.update(properties)
            self.touch(kind, obj, modified_at)

    def touch(self, kind: str, obj: SimObject, modified_at: datetime | None = None) -> None:
        """Bump the record's last-modified date and write it back (with its changes)."""
        with self.lock:
            obj.updated_at = modified_at or self.now()
            obj.properties[MODIFIED_PROPERTY[kind]] = format_timestamp(obj.updated_at)
            self.objects[kind][obj.id] = obj

    def add_oauth_app(self, client_id: str, client_secret: str, refresh_token: str) -> None:
        """An installed public app: its credentials and one installation's refresh token."""
        with self.lock:
            self.oauth_apps[client_id] = client_secret
            self.refresh_tokens[refresh_token] = client_id

    def issue_access_token(self) -> tuple[str, int]:
        """A new OAuth access token (HubSpot's are long; allow >= 300 characters)."""
        token = "CJT" + secrets.token_urlsafe(240)
        with self.lock:
            self.access_tokens[token] = time.monotonic() + self.token_lifetime_s
        return token, self.token_lifetime_s

    def expire_access_tokens(self) -> None:
        """Make every issued OAuth access token expired, as if 30 minutes had passed."""
        with self.lock:
            past = time.monotonic() - 1
            self.access_tokens = {token: past for token in self.access_tokens}

    # -- inspection -----------------------------------------------------------------------

    def contact(self, contact_id: str) -> SimObject:
        with self.lock:
            return self.objects["contacts"][int(contact_id)]

    def calls(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Requests to ``path`` (exact), optionally of one method."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method)
            ]

    # -- rate limits ----------------------------------------------------------------------

    def admit(self, *, search: bool, oauth: bool) -> Admission:
        """Count a request against the limits, or say which limit it hits."""
        limits = self.rate_limits
        now = time.monotonic()
        with self.lock:
            while self._burst and self._burst[0] <= now - limits.burst_window_s:
                self._burst.popleft()
            while self._search and self._search[0] <= now - 1.0:
                self._search.popleft()
            policy: str | None = None
            if limits.enforce:
                if self.daily_used >= limits.daily_limit:
                    policy = "DAILY"
                elif search and len(self._search) >= limits.search_per_second:
                    policy = "SECONDLY"
                elif not search and len(self._burst) >= limits.burst_limit:
                    policy = "TEN_SECONDLY_ROLLING"
            if policy is None:
                self.daily_used += 1
                (self._search if search else self._burst).append(now)
            else:
                self.throttled[policy] += 1
            if search:
                return Admission(policy, {})  # search answers carry no rate-limit headers
            headers = {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.burst_window_s * 1000)),
                "X-HubSpot-RateLimit-Max": str(limits.burst_limit),
                "X-HubSpot-RateLimit-Remaining": str(max(0, limits.burst_limit - len(self._burst))),
            }
            if not oauth:  # the daily headers are absent for OAuth apps
                headers["X-HubSpot-RateLimit-Daily"] = str(limits.daily_limit)
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                    max(0, limits.daily_limit - self.daily_used)
                )
            return Admission(policy, headers)

    def seconds_ago(self, seconds: float) -> datetime:
        """A timestamp ``seconds`` before the simulator's now (seeding helper)."""
        return self.now() - timedelta(seconds=seconds)


_SCHEMA = """
CREATE TABLE objects (
    kind TEXT NOT NULL, id INTEGER NOT NULL, created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL, archived INTEGER NOT NULL, email_key TEXT,
    properties TEXT NOT NULL, PRIMARY KEY (kind, id)
);
CREATE INDEX objects_email ON objects (kind, email_key);
CREATE INDEX objects_modified ON objects (kind, updated_us);
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
PAGE = 1000
"""Rows read per query when a whole kind is walked."""

Row = tuple[Any, ...]
"""A row as sqlite3 returns it: id, created_us, updated_us, archived, properties."""


class ObjectTable(MutableMapping[int, SimObject]):
    """One kind's records as a mapping of id to ``SimObject``, read under the state's lock.

    A record read while another copy of it is still referenced is that same object (a weak
    identity map), so a holder sees changes made through the API; nothing else is kept.
    Iterating walks the table by id in pages; setting an item writes the record.
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock, kind: str) -> None:
        self._db, self._lock, self.kind = db, lock, kind
        self._live: weakref.WeakValueDictionary[int, SimObject] = weakref.WeakValueDictionary()

    def _record(self, row: Row) -> SimObject:
        ident, created, updated, archived, properties = row
        found = self._live.get(ident)
        if found is None:
            found = self._live[ident] = SimObject(
                ident,
                json.loads(properties),
                _EPOCH + created * _MICROSECOND,
                _EPOCH + updated * _MICROSECOND,
                bool(archived),
            )
        return found

    def select(self, where: str, params: tuple[object, ...] = ()) -> list[SimObject]:
        """The records matching a SQL condition (callers keep it selective)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created_us, updated_us, archived, properties FROM objects "
                f"WHERE kind = ? AND {where}",
                (self.kind, *params),
            ).fetchall()
            return [self._record(row) for row in rows]

    def by_email(self, email: str) -> SimObject | None:
        """The first record whose ``email`` is ``email`` (case-insensitive; indexed)."""
        found = self.select("email_key = ? ORDER BY id LIMIT 1", (email.casefold(),))
        return found[0] if found else None

    def count_having(self, name: str) -> int:
        """How many records have a non-empty value for the property ``name``."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT count(*) FROM objects WHERE kind = ? AND "
                "coalesce(json_extract(properties, ?), '') != ''",
                (self.kind, f'$."{name}"'),
            ).fetchone()
        return int(count)

    def get(self, key: object, default: object = None) -> SimObject | None:  # type: ignore[override]
        if not isinstance(key, int):
            return None
        with self._lock:
            live = self._live.get(key)
            if live is not None:
                return live
            found = self.select("id = ?", (key,))
            return found[0] if found else None

    def __getitem__(self, key: int) -> SimObject:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __setitem__(self, key: int, obj: SimObject) -> None:
        email = obj.properties.get("email")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.kind, key, (obj.created_at - _EPOCH) // _MICROSECOND,
                 (obj.updated_at - _EPOCH) // _MICROSECOND, int(obj.archived),
                 None if email is None else email.casefold(), json.dumps(obj.properties)),
            )  # fmt: skip
            self._live[key] = obj

    def __delitem__(self, key: int) -> None:
        with self._lock:
            self._live.pop(key, None)
            gone = self._db.execute(
                "DELETE FROM objects WHERE kind = ? AND id = ?", (self.kind, key)
            )
            if gone.rowcount == 0:
                raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT count(*) FROM objects WHERE kind = ?", (self.kind,)
            ).fetchone()
        return int(count)

    def after(
        self, ident: int, where: str = "1", params: tuple[object, ...] = ()
    ) -> Iterator[SimObject]:
        """Records with an id above ``ident`` (and matching ``where``), ascending, a page at
        a time (the lock is held per page, not throughout)."""
        while True:
            page = self.select(f"id > ? AND ({where}) ORDER BY id LIMIT ?", (ident, *params, PAGE))
            yield from page
            if len(page) < PAGE:
                return
            ident = page[-1].id

    def modified_since(self, moment: datetime) -> Iterator[SimObject]:
        """Records last modified at or after ``moment``, by id (indexed: what an incremental
        search asks for)."""
        return self.after(-(2**63), "updated_us >= ?", ((moment - _EPOCH) // _MICROSECOND,))

    def __iter__(self) -> Iterator[int]:
        return (obj.id for obj in self.after(-(2**63)))

    def values(self) -> ValuesView[SimObject]:
        return _Values(self)

    def items(self) -> ItemsView[int, SimObject]:
        return _Items(self)


class _Values(ValuesView[SimObject]):
    _mapping: ObjectTable

    def __iter__(self) -> Iterator[SimObject]:
        return self._mapping.after(-(2**63))


class _Items(ItemsView[int, SimObject]):
    _mapping: ObjectTable

    def __iter__(self) -> Iterator[tuple[int, SimObject]]:
        return ((obj.id, obj) for obj in self._mapping.after(-(2**63)))
