"""Fixtures for the sync engine: a migrated store and synthetic sources."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clm_hub.linking import customer_t, identity_t, order_t, response_t
from clm_hub.plugins import PluginRegistry, build_plugin_registry
from clm_hub.settings import HubSettings
from clm_hub.store import upgrade
from clm_hub.sync import CycleResult, SyncEngine
from clm_hub.testing import synthetic


@pytest.fixture
def registry() -> PluginRegistry:
    return build_plugin_registry(entry_points=False, extra={"synthetic": synthetic})


@pytest.fixture
def store(engine: Engine) -> Engine:
    upgrade(engine)
    return engine


@dataclass
class Hub:
    store: Engine
    registry: PluginRegistry
    connectors: dict[str, dict[str, Any]]
    identity: dict[str, Any]

    def settings(self) -> HubSettings:
        return HubSettings(
            database_url=str(self.store.url), connectors=self.connectors, identity=self.identity
        )

    def sync(
        self, *ids: str, full: bool = False, dry_run: bool = False, workers: bool | None = None
    ) -> CycleResult:
        """One cycle; ``workers``: pull in worker processes (default: as settings say)."""
        import asyncio

        with SyncEngine(self.settings(), self.registry, self.store, pull_workers=workers) as hub:
            return asyncio.run(hub.run_cycle(list(ids) or None, full=full, dry_run=dry_run))


@pytest.fixture
def hub(store: Engine, registry: PluginRegistry) -> Iterator[Hub]:
    yield Hub(store, registry, {}, {})


def source(**settings: Any) -> dict[str, Any]:
    return {"plugin": "synthetic", **settings}


def snapshot(engine: Engine) -> dict[str, Any]:
    """The store's content by natural keys (ids differ between runs)."""
    with engine.connect() as conn:
        emails = {k: v for k, v in conn.execute(select(customer_t.c.id, customer_t.c.email))}
        i, o, r = identity_t.c, order_t.c, response_t.c
        identities = sorted(
            (s, e, emails.get(c))
            for s, e, c in conn.execute(select(i.source, i.external_id, i.customer_id))
        )
        orders = sorted(
            (s, e, emails.get(c), str(t), st)
            for s, e, c, t, st in conn.execute(
                select(o.source, o.external_id, o.customer_id, o.total, o.status)
            )
        )
        responses = sorted(
            (s, e, emails.get(c), sc)
            for s, e, c, sc in conn.execute(select(r.source, r.external_id, r.customer_id, r.score))
        )
    return {
        "customers": sorted(str(e) for e in emails.values()),
        "identities": identities,
        "orders": orders,
        "responses": responses,
    }
