"""Pulls in worker processes write exactly what pulls in the hub's process write, and a
worker's failure (or death) fails its stream only, like any other tool failure."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select

from clm_hub import (
    Capability,
    Connector,
    ContactRecord,
    Page,
    RegisterConnector,
    StreamCursor,
    hookimpl,
)
from clm_hub.identity import IdentityRules
from clm_hub.ingest import PageCounts
from clm_hub.linking import identity_t, order_t, response_t
from clm_hub.plugins import PluginRegistry, build_plugin_registry
from clm_hub.prepare import PrepareRules, prepare_page
from clm_hub.pull_worker import worker_spec
from clm_hub.records import OrderRecord, parse_json_page
from clm_hub.runs import RunStatus
from clm_hub.settings import HubSettings
from clm_hub.store import open_engine, upgrade
from clm_hub.sync import StreamResult, SyncEngine
from clm_hub.testing.synthetic import SyntheticSettings
from clm_hub.testing.synthetic_api import SyntheticApi
from tests.engine.conftest import Hub, snapshot, source

# Two tools sharing people, bad rows, survey answers, pages of 40.
SOURCES = {
    "shop": source(contacts=90, orders=400, survey_responses=50, page_size=40, bad_every=23),
    "crm": source(id_prefix="c", first_person=60, contacts=80, orders=0, page_size=40),
}


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored column that comes from the tools (not ids or write times)."""
    i, o, r = identity_t.c, order_t.c, response_t.c
    with engine.connect() as conn:
        return {
            "identities": sorted(
                conn.execute(
                    select(
                        i.source, i.external_id, i.email, i.phone, i.first_name, i.last_name,
                        i.marketing_consent, i.tags, i.source_created_at, i.source_updated_at,
                        i.content_hash,
                    )
                ).all()
            ),
            "orders": sorted(
                conn.execute(
                    select(
                        o.source, o.external_id, o.source_customer_id, o.email, o.placed_at,
                        o.source_updated_at, o.total, o.refunded, o.currency, o.status,
                        o.content_hash,
                    )
                ).all()
            ),
            "responses": sorted(
                conn.execute(
                    select(
                        r.source, r.external_id, r.survey_id, r.score, r.answered_at, r.comment,
                        r.content_hash,
                    )
                ).all()
            ),
        }  # fmt: skip


@contextmanager
def _sqlite_hub(folder: Path, name: str, registry: PluginRegistry) -> Iterator[Hub]:
    engine = open_engine(f"sqlite:///{folder}/{name}.sqlite3")
    upgrade(engine)
    try:
        yield Hub(engine, registry, dict(SOURCES), {})
    finally:
        engine.dispose()


def test_workers_build_the_same_store_as_the_hub_process(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    with (
        _sqlite_hub(tmp_path, "inline", registry) as inline,
        _sqlite_hub(tmp_path, "workers", registry) as workers,
    ):
        by_hub = inline.sync(workers=False)
        by_workers = workers.sync(workers=True)
        assert snapshot(workers.store) == snapshot(inline.store)
        assert _rows(workers.store) == _rows(inline.store)
        for a, b in zip(by_hub.connectors, by_workers.connectors, strict=True):
            assert [(s.stream, s.status, s.counts.read, s.counts.inserted, s.counts.rejected,
                     s.api_calls) for s in a.streams] == [
                (s.stream, s.status, s.counts.read, s.counts.inserted, s.counts.rejected,
                 s.api_calls) for s in b.streams
            ]  # fmt: skip


def test_a_full_re_read_through_workers_finds_every_record_unchanged(hub: Hub) -> None:
    """Hashes, emails and phones prepared in a worker equal the hub's own (both stores)."""
    hub.connectors.update(SOURCES)
    hub.sync(workers=False)
    before = snapshot(hub.store)
    again = hub.sync(full=True, workers=True)
    streams = [s for c in again.connectors for s in c.streams]
    assert sum(s.counts.inserted + s.counts.updated for s in streams) == 0
    assert sum(s.counts.unchanged for s in streams) == sum(
        s.counts.read - s.counts.rejected for s in streams
    )
    assert snapshot(hub.store) == before


def test_a_tool_failing_in_a_worker_fails_its_stream_with_the_tool_s_error(hub: Hub) -> None:
    hub.connectors["down"] = source(id_prefix="d", contacts=200, page_size=20, fail_after_pages=2)
    hub.connectors["up"] = source(contacts=30, orders=60, page_size=20)
    result = hub.sync(workers=True)
    by_id = {c.connector: c for c in result.connectors}
    assert by_id["up"].status is RunStatus.OK
    [contacts, *_] = by_id["down"].streams
    assert contacts.status is RunStatus.FAILED
    assert contacts.error == "UpstreamError: down: synthetic outage (503)"  # as in-process
    assert contacts.counts.read == 40  # the two pages before the outage landed


class _Killer:
    """A progress sink that kills the connector's worker after its first written page."""

    def __init__(self) -> None:
        self.engine: SyncEngine | None = None
        self.killed = False

    def stream_started(self, connector: str, stream: str, note: str) -> None: ...

    def page_written(self, connector: str, stream: str, counts: PageCounts) -> None:
        if not self.killed and self.engine is not None and self.engine.workers is not None:
            worker = self.engine.workers._workers[connector]
            worker.process.kill()
            self.killed = True

    def stream_finished(self, result: StreamResult) -> None: ...


def test_a_worker_that_dies_fails_its_stream_and_the_next_cycle_resumes(
    hub: Hub, tmp_path: Path, registry: PluginRegistry
) -> None:
    hub.connectors["shop"] = source(contacts=120, orders=300, page_size=20, page_delay=0.01)
    killer = _Killer()
    with SyncEngine(hub.settings(), hub.registry, hub.store, progress=killer,
                    pull_workers=True) as engine:  # fmt: skip
        killer.engine = engine
        first = asyncio.run(engine.run_cycle())
        [contacts, *_] = first.connectors[0].streams
        assert contacts.status is RunStatus.FAILED
        assert contacts.error is not None
        assert contacts.error.startswith("WorkerExited: the pull worker of shop was killed by")
        second = asyncio.run(engine.run_cycle())  # a new worker, from the stored cursor
        assert second.connectors[0].status is RunStatus.OK
    with _sqlite_hub(tmp_path, "reference", registry) as reference:
        reference.connectors.clear()
        reference.connectors["shop"] = hub.connectors["shop"]
        reference.sync(workers=False)
        assert snapshot(hub.store) == snapshot(reference.store)


def test_connectors_that_cannot_be_built_elsewhere_stay_in_the_hub_process(hub: Hub) -> None:
    class Local(Connector[SyntheticSettings]):
        name = "local"
        settings_model = SyntheticSettings
        default_base_url = "http://local.invalid"
        capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CONTACTS})

        async def _pages(self) -> Any:
            yield Page[ContactRecord](
                records=[ContactRecord(external_id="l1", email="l1@example.com")],
                cursor=StreamCursor(token="done"),
            )

        def pull_contacts(self, since: StreamCursor | None) -> Any:
            return self._pages()

    class Plugin:
        @hookimpl
        def register_connectors(self, register: RegisterConnector) -> None:
            register(Local)

    rules = PrepareRules(IdentityRules(), None, "clm")
    assert worker_spec("l", "local", Local, SyntheticSettings(), rules) is None
    hub.registry = build_plugin_registry(entry_points=False, extra={"local": Plugin()})
    hub.connectors["l"] = {"plugin": "local"}
    result = hub.sync(workers=True)
    assert result.connectors[0].status is RunStatus.OK
    assert snapshot(hub.store)["identities"][0][:2] == ("l", "l1")


def test_workers_stop_with_their_engine(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=10, orders=10)
    engine = SyncEngine(hub.settings(), hub.registry, hub.store, pull_workers=True)
    asyncio.run(engine.run_cycle())
    assert engine.workers is not None
    [worker] = engine.workers._workers.values()
    assert worker.process.is_alive()  # kept for the next cycle
    engine.close()
    assert not worker.process.is_alive()


def test_settings_decide_and_a_fake_transport_keeps_pulls_in_process(store: Engine) -> None:
    import httpx

    registry = build_plugin_registry(entry_points=False)
    on = HubSettings(database_url=str(store.url))
    off = HubSettings(database_url=str(store.url), sync={"pull_workers": False})
    assert SyncEngine(on, registry, store).workers is not None
    assert SyncEngine(off, registry, store).workers is None
    fake = httpx.MockTransport(lambda request: httpx.Response(500))
    assert SyncEngine(on, registry, store, transport=fake).workers is None


def test_prepared_pages_survive_the_pipe_unchanged() -> None:
    """Orders travel as driver-ready columns, contacts as records rebuilt unvalidated."""
    api = SyntheticApi(SyntheticSettings(contacts=50, orders=120, page_size=200, bad_every=17))
    rules = PrepareRules(IdentityRules(), "US", "clm")
    pages: list[tuple[str, Page[Any]]] = [
        ("contacts", parse_json_page(api.page("contacts", None, 0).body, ContactRecord)),
        ("orders", parse_json_page(api.page("orders", None, 0).body, OrderRecord)),
    ]
    for stream, page in pages:
        prepared = prepare_page(stream, page, rules)
        copy = pickle.loads(pickle.dumps(prepared))
        assert copy == prepared
        assert copy.rejected and copy.rejected == list(page.rejected)
    contacts = pickle.loads(pickle.dumps(prepare_page("contacts", page_of_contacts(), rules)))
    assert contacts.contacts is not None
    [record] = contacts.contacts.records
    assert record.model_dump() == page_of_contacts().records[0].model_dump()
    with pytest.raises(ValidationError, match="frozen"):  # rebuilt records stay frozen
        record.email = "x"


def page_of_contacts() -> Page[ContactRecord]:
    return parse_json_page(
        b'[{"external_id": " 7 ", "email": "A@Example.com", "phone": "+1 415 555 0123",'
        b' "created_at": "2026-01-02T10:00:00+02:00", "tags": ["vip", "clm:stage:new"]}]',
        ContactRecord,
    )


def test_a_slow_worker_start_does_not_block_the_event_loop(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon renews its leases on the event loop: a worker start that waits for the
    fork server (seconds, on a busy machine) must not hold the loop up."""
    from clm_hub import pull_worker

    original = pull_worker._Worker.__init__

    def slow_start(self: Any, spec: Any, context: Any) -> None:
        time.sleep(1.0)  # a fork server still importing, on a loaded machine
        original(self, spec, context)

    monkeypatch.setattr(pull_worker._Worker, "__init__", slow_start)
    hub.connectors["shop"] = source(contacts=10, orders=0)

    async def cycle_and_ticks() -> float:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        with SyncEngine(hub.settings(), hub.registry, hub.store, pull_workers=True) as engine:
            result = await engine.run_cycle()
        ticking.cancel()
        assert result.connectors[0].status is RunStatus.OK
        return max(gaps)

    assert asyncio.run(cycle_and_ticks()) < 0.5
