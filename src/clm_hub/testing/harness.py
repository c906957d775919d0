"""What a plugin author implements so the contract kit can drive their simulator.

A harness owns one fresh simulated tool: it seeds records, changes them behind the
connector's back, reads back what a push did, and injects faults through a ``FaultPlan``
its simulator app consults. The kit (``clm_hub.testing.contract``) builds the connector
from ``connector_settings`` exactly as the hub does and talks to ``app()`` over real HTTP.

The core protocol covers every connector that pulls contacts; the small protocols below it
cover what only some connectors do (orders, tag push, field push). The kit checks the
connector's declared capabilities and asks for the matching protocol, so a tags-only tool
never writes field helpers::

    ConnectorHarness      every harness: simulator, settings, seeding, faults, pacing
    OrdersHarness         the connector declares Capability.ORDERS
    TagsHarness           the connector declares Capability.TAG_PUSH
    FieldsHarness         the connector declares Capability.FIELD_PUSH
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from starlette.types import ASGIApp, Receive, Scope, Send

from clm_hub.sandbox import FaultPlan, serve

__all__ = [
    "ConnectorHarness",
    "FieldsHarness",
    "LoopbackServer",
    "OrdersHarness",
    "RateLimitPlan",
    "TagsHarness",
]


@dataclass(frozen=True)
class RateLimitPlan:
    """A small rate limit the simulator now enforces, and how the connector learns of it.

    The kit sends about ``burst + 0.8 * per_second`` requests and expects them to take
    time (the limit must bite) and to draw no 429 (the connector must pace). For a token
    bucket, count requests as bucket size / cost of one page request.
    """

    settings: Mapping[str, object]
    """Connector settings that declare the limit (merged over ``connector_settings``)."""
    burst: int
    """Requests the simulator admits at once, from idle."""
    per_second: float
    """Requests per second it admits after the burst."""


class ConnectorHarness(Protocol):
    """One fresh simulated tool for one scenario. The kit calls the factory once per
    scenario, so state never leaks between scenarios."""

    @property
    def plugin(self) -> object:
        """The plugin object (usually the package module) whose ``register_connectors``
        hook offers the connector: the kit loads it as the hub loads an entry point."""
        ...

    @property
    def connector_name(self) -> str:
        """The connector's ``name``, as written in ``plugin = "..."`` in hub.toml."""
        ...

    @property
    def page_size(self) -> int:
        """Records per page of a full pull with ``connector_settings``; the kit seeds
        around it to cross page boundaries."""
        ...

    @property
    def faults(self) -> FaultPlan:
        """The fault plan ``app()`` consults on every request."""
        ...

    def app(self) -> ASGIApp:
        """The simulator serving this harness's state and ``faults``."""
        ...

    def connector_settings(self, base_url: str) -> Mapping[str, object]:
        """The ``[connectors.<id>]`` table (without ``plugin``) reaching the simulator at
        ``base_url``: credentials the simulator accepts and a page size of ``page_size``."""
        ...

    def add_contacts(self, count: int) -> list[str]:
        """Create ``count`` contacts last changed at least a minute ago, each at a distinct
        time; return their external ids as the connector reports them, oldest first."""
        ...

    def touch_contact(self, external_id: str) -> None:
        """Change a contact now, as a user of the tool would, so an incremental pull must
        return it."""
        ...

    def limit_rate(self) -> RateLimitPlan:
        """Make the simulator enforce a small limit (a few requests at once, about ten per
        second) from now on, and say how the connector is told about it."""
        ...

    def throttled_count(self) -> int:
        """How many requests the simulator answered with its rate-limit response."""
        ...


@runtime_checkable
class OrdersHarness(Protocol):
    """For connectors that pull orders."""

    def add_orders(self, count: int) -> list[str]:
        """Create ``count`` paid orders (linked to a buyer) last changed at least a minute
        ago; return their external ids as the connector reports them."""
        ...


@runtime_checkable
class SurveyHarness(Protocol):
    """For connectors that pull survey responses."""

    def add_responses(self, count: int) -> list[str]:
        """``count`` answered responses from distinct, identifiable people, submitted at
        least a minute ago at distinct times; their external ids, oldest first."""
        ...

    def add_response_now(self) -> str:
        """A response submitted now, which an incremental pull must return."""
        ...


@runtime_checkable
class TagsHarness(Protocol):
    """For connectors that push tags (``PushChange.add_tags``/``remove_tags``)."""

    def tags(self, external_id: str) -> frozenset[str]:
        """Every tag the contact shows in the tool now, foreign ones included."""
        ...

    def add_foreign_tag(self, external_id: str, tag: str) -> None:
        """Tag a contact as a user of the tool would (the hub must never remove it)."""
        ...

    def fail_record(self, external_id: str) -> None:
        """Make the tool refuse writes to this contact alone (e.g. delete it), so a push
        batch containing it gets a per-record error."""
        ...


@runtime_checkable
class FieldsHarness(Protocol):
    """For connectors that push fields (``PushChange.set_fields``)."""

    def field_values(self, external_id: str) -> Mapping[str, str | None]:
        """The contact's field values in the tool now; empty or absent means cleared."""
        ...

    def fail_record(self, external_id: str) -> None:
        """Make the tool refuse writes to this contact alone (e.g. delete it)."""
        ...


class _Switch:
    """An ASGI app forwarding to whichever simulator is plugged in."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("no simulator is plugged into the contract kit's server")
        await self.app(scope, receive, send)


class LoopbackServer:
    """One real HTTP server on 127.0.0.1 whose simulator is swapped per scenario.

    Starting and stopping uvicorn costs about 0.2 s, so a test class keeps one server for
    all its scenarios instead of one per scenario.
    """

    def __init__(self) -> None:
        self._switch = _Switch()
        self._stack: ExitStack | None = None
        self._url: str | None = None

    def start(self) -> str:
        """Start serving (idempotent); return the base URL."""
        if self._url is None:
            stack = ExitStack()
            self._url = stack.enter_context(serve(self._switch))
            self._stack = stack
        return self._url

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._url = None, None

    @contextmanager
    def serving(self, app: ASGIApp) -> Iterator[str]:
        """Plug ``app`` in for the duration of the block; yields the base URL."""
        url = self.start()
        self._switch.app = app
        try:
            yield url
        finally:
            self._switch.app = None
