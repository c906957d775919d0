"""One scenario's world for the contract kit, and the checks scenarios share.

``ContractRun`` loads the harness's plugin, builds connectors from the harness's settings
exactly as the hub does, and closes them afterwards; ``pull_all`` drains a pull;
``check``/``exactly`` raise ``ContractViolation`` with a message saying what broke.
"""

from __future__ import annotations

import unittest
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal

from clm_hub.connectors.base import Capability, Connector
from clm_hub.plugins import build_plugin_registry
from clm_hub.push.mapping import PushMapping
from clm_hub.records import Page, R, Rejection, StreamCursor
from clm_hub.redaction import secrets_in
from clm_hub.runtime import ConfiguredConnector, build_redactor, configure_connectors
from clm_hub.runtime import open_connector as open_configured
from clm_hub.sandbox import Fault
from clm_hub.settings import HubSettings
from clm_hub.testing.clock import VirtualClock
from clm_hub.testing.harness import (
    ConnectorHarness,
    FieldsHarness,
    OrdersHarness,
    TagsHarness,
)

__all__ = [
    "CONNECTOR_ID",
    "ContractRun",
    "ContractViolation",
    "Pulled",
    "Scenario",
    "ScenarioSkipped",
    "check",
    "exactly",
    "pull_all",
]

CONNECTOR_ID = "contract"


class ContractViolation(AssertionError):
    """The connector (or its harness) broke the contract; the message says how."""


class ScenarioSkipped(unittest.SkipTest):
    """The scenario does not apply to this connector (pytest reports it as skipped)."""


def check(condition: bool, message: str) -> None:
    """Raise ``ContractViolation`` with ``message`` unless ``condition`` holds."""
    # Explicit raises, not ``assert``: library code is not rewritten by pytest and must
    # not vanish under ``python -O``.
    if not condition:
        raise ContractViolation(message)


@dataclass
class Pulled(Generic[R]):
    """Everything one pull yielded."""

    records: list[R] = field(default_factory=list)
    pages: int = 0
    cursor: StreamCursor | None = None
    """The last cursor any page carried: where the hub would resume."""
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [record.external_id for record in self.records]


async def pull_all(
    pages: AsyncIterator[Page[R]], *, after_page: Callable[[int], None] | None = None
) -> Pulled[R]:
    """Drain a pull; ``after_page(n)`` runs after the n-th page (1-based), before the next
    page is requested, e.g. to inject a fault into the next request."""
    out: Pulled[R] = Pulled()
    async for page in pages:
        out.pages += 1
        out.records.extend(page.records)
        out.rejected.extend(page.rejected)
        if page.cursor is not None:
            out.cursor = page.cursor
        if after_page is not None:
            after_page(out.pages)
    return out


async def pull_through_faults(
    run: ContractRun,
    expected: Sequence[str],
    pull: Callable[[Connector[Any]], AsyncIterator[Page[Any]]],
) -> None:
    """A 5xx, a 429 and a malformed body, one on each of the first three page requests of
    ``pull``, are retried and the pull still returns ``expected`` exactly once."""
    faults = run.harness.faults
    faults.inject(Fault.SERVER_ERROR)
    connector = run.open()
    later = {1: Fault.RATE_LIMIT, 2: Fault.MALFORMED}

    def inject(page: int) -> None:
        if page in later:
            faults.inject(later[page])

    pulled = await pull_all(pull(connector), after_page=inject)
    exactly(pulled, expected, "full pull through faults")
    applied = [fault for fault, _ in faults.applied]
    check(
        applied == [Fault.SERVER_ERROR, Fault.RATE_LIMIT, Fault.MALFORMED],
        f"the simulator applied {applied}: it must answer each injected fault",
    )
    retries = connector.http.stats.retries
    check(retries >= 3, f"{retries} retries for 3 injected faults")


def exactly(pulled: Pulled[Any], expected: Sequence[str], what: str) -> None:
    """Check that a pull returned each of ``expected`` once, nothing else, nothing rejected."""
    counts = Counter(pulled.ids)
    twice = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(counts))
    extra = sorted(set(counts) - set(expected))
    check(not pulled.rejected, f"{what}: rows were rejected: {pulled.rejected[:3]}")
    check(not missing, f"{what}: {len(missing)} seeded record(s) missing, e.g. {missing[:5]}")
    check(not twice, f"{what}: record(s) returned more than once: {twice[:5]}")
    check(not extra, f"{what}: record(s) that were never seeded: {extra[:5]}")


class ContractRun:
    """One scenario's world: the harness, its simulator's URL and the connectors opened."""

    def __init__(self, harness: ConnectorHarness, base_url: str) -> None:
        self.harness = harness
        self.base_url = base_url
        self.registry = build_plugin_registry(
            entry_points=False, extra={harness.connector_name: harness.plugin}
        )
        self.connector_class = self.registry.connector(harness.connector_name)
        self.prefix = HubSettings().tag_prefix
        self.opened: list[Connector[Any]] = []

    async def __aenter__(self) -> ContractRun:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for connector in self.opened:
            await connector.http.aclose()
        self.opened.clear()

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.connector_class.capabilities

    def require(self, *capabilities: Capability) -> None:
        """Skip the scenario unless the connector declares one of ``capabilities``."""
        if not set(capabilities) & self.capabilities:
            names = " or ".join(c.value for c in capabilities)
            raise ScenarioSkipped(f"{self.harness.connector_name} does not declare {names}")

    def configure(self, **overrides: object) -> ConfiguredConnector:
        """The connector's table validated by the hub's own settings code."""
        table = {
            "plugin": self.harness.connector_name,
            **self.harness.connector_settings(self.base_url),
            **overrides,
        }
        settings = HubSettings.model_validate({"connectors": {CONNECTOR_ID: table}})
        [item] = configure_connectors(settings, self.registry)
        check(item.ok, f"the harness's connector settings are invalid: {item.error}")
        return item

    def open(self, **overrides: object) -> Connector[Any]:
        """A connector opened as the hub opens one; closed when the run ends."""
        item = self.configure(**overrides)
        connector = open_configured(item, build_redactor([item]), clock=VirtualClock())
        self.opened.append(connector)
        return connector

    def secrets(self) -> list[str]:
        """The secret values in the connector's settings (they must never leak)."""
        settings = self.configure().settings
        return [] if settings is None else secrets_in(settings)

    def orders_harness(self) -> OrdersHarness:
        harness = self.harness
        check(
            isinstance(harness, OrdersHarness),
            "the connector pulls orders, so its harness must implement OrdersHarness (add_orders)",
        )
        assert isinstance(harness, OrdersHarness)  # for the type checker
        return harness

    def tags_harness(self) -> TagsHarness:
        harness = self.harness
        check(
            isinstance(harness, TagsHarness),
            "the connector pushes tags, so its harness must implement TagsHarness "
            "(tags, add_foreign_tag, fail_record)",
        )
        assert isinstance(harness, TagsHarness)  # for the type checker
        return harness

    def fields_harness(self) -> FieldsHarness:
        harness = self.harness
        check(
            isinstance(harness, FieldsHarness),
            "the connector pushes fields, so its harness must implement FieldsHarness "
            "(field_values, fail_record)",
        )
        assert isinstance(harness, FieldsHarness)
        return harness

    def field_name(self, kind: Literal["stage", "segment", "nps"]) -> str:
        """The field the hub writes ``kind`` into by default (e.g. ``clm_stage``)."""
        return PushMapping().field_name(kind, self.prefix)


Scenario = Callable[[ContractRun], Awaitable[None]]
