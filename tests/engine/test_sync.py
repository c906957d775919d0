"""The pull cycle end to end on a real store: cursors, idempotence, rejection, isolation."""

from __future__ import annotations

from sqlalchemy import func, select

from clm_hub.linking import customer_t, identity_t, order_t
from clm_hub.runs import RunStatus
from clm_hub.sandbox import serve
from clm_hub.store.tables import RejectedRecord, SyncCursor, SyncRun
from clm_hub.testing.synthetic_api import SyntheticSettings, create_app
from tests.engine.conftest import Hub, snapshot, source

run_t = SyncRun.__table__  # type: ignore[attr-defined]
rejected_t = RejectedRecord.__table__  # type: ignore[attr-defined]
cursor_t = SyncCursor.__table__  # type: ignore[attr-defined]


def count(hub: Hub, table: object) -> int:
    with hub.store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_full_pull_links_every_order_to_its_customer(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=40, orders=120, survey_responses=30, page_size=7)
    cycle = hub.sync()
    [shop] = cycle.connectors
    assert shop.status is RunStatus.OK
    assert [s.counts.inserted for s in shop.streams] == [40, 120, 30]
    assert count(hub, customer_t) == 40
    with hub.store.connect() as conn:
        unlinked = conn.execute(
            select(func.count()).select_from(order_t).where(order_t.c.customer_id.is_(None))
        ).scalar_one()
    assert unlinked == 0
    assert len(cycle.dirty_customers) == 40


def test_messy_emails_from_two_tools_become_one_customer(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=30, orders=0, id_prefix="s")
    hub.connectors["crm"] = source(contacts=30, orders=0, id_prefix="c", first_person=10, seed=2)
    hub.sync()
    # people 0-39 exist; 10-29 are in both tools (with different email case/whitespace)
    assert count(hub, customer_t) == 40
    assert count(hub, identity_t) == 60
    with hub.store.connect() as conn:
        merged = conn.execute(
            select(identity_t.c.customer_id)
            .where(identity_t.c.external_id.in_(["sc15", "cc15"]))
        ).scalars().all()  # fmt: skip
    assert len(set(merged)) == 1


def test_same_pages_twice_leave_an_identical_store(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=25, orders=60, survey_responses=10, page_size=9)
    hub.sync()
    first = snapshot(hub.store)
    again = hub.sync(full=True)
    assert snapshot(hub.store) == first
    [shop] = again.connectors
    assert all(s.counts.inserted == 0 and s.counts.updated == 0 for s in shop.streams)
    assert again.dirty_customers == set()


def test_incremental_pull_resumes_from_the_stored_cursor(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=200, orders=400, page_size=50)
    hub.sync()
    hub.connectors["shop"] = source(contacts=200, orders=400, page_size=50, edit_round=1)
    cycle = hub.sync()
    contacts, orders, _ = cycle.connectors[0].streams
    # Only edited records (and the few inside the overlap window) are read again.
    assert 0 < contacts.counts.read < 60
    assert contacts.counts.updated == contacts.counts.read - contacts.counts.unchanged
    assert contacts.counts.updated > 0 and orders.counts.updated > 0
    assert "resuming from cursor" in contacts.note


def test_full_flag_re_reads_everything(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=30, orders=30)
    hub.sync()
    cycle = hub.sync(full=True)
    contacts = cycle.connectors[0].streams[0]
    assert contacts.counts.read == 30
    assert contacts.counts.unchanged == 30
    assert contacts.note == "full re-read requested"


def test_malformed_records_are_rejected_with_reasons_and_the_rest_lands(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=30, orders=50, bad_every=10, page_size=8)
    cycle = hub.sync()
    contacts, orders, _ = cycle.connectors[0].streams
    assert (contacts.counts.rejected, contacts.counts.inserted) == (3, 27)
    assert (orders.counts.rejected, orders.counts.inserted) == (5, 45)
    assert contacts.status is RunStatus.PARTIAL
    with hub.store.connect() as conn:
        rows = conn.execute(
            select(rejected_t.c.stream, rejected_t.c.external_id, rejected_t.c.reason)
        ).all()
    reasons = {(s, e): r for s, e, r in rows}
    assert reasons[("contacts", "sc9")].startswith("updated_at: Input should be a valid datetime")
    assert reasons[("orders", "so9")] == "total: Input should be greater than or equal to 0"


def test_one_failing_connector_does_not_stop_another(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=20, orders=20, page_size=5)
    hub.connectors["broken"] = source(
        contacts=20, orders=0, id_prefix="b", fail_after_pages=2, page_size=5
    )
    cycle = hub.sync()
    results = {c.connector: c for c in cycle.connectors}
    assert results["shop"].status is RunStatus.OK
    assert results["broken"].status is RunStatus.FAILED
    assert "synthetic outage" in (results["broken"].reason or "")
    # the pages before the outage landed, with their cursor
    with hub.store.connect() as conn:
        landed = conn.execute(
            select(func.count())
            .select_from(identity_t)
            .where(identity_t.c.source == "broken", identity_t.c.content_hash != "")
        ).scalar_one()
        stored = conn.execute(
            select(cursor_t.c.updated_since).where(
                cursor_t.c.connector == "broken", cursor_t.c.stream == "contacts"
            )
        ).scalar_one()
    assert landed == 10
    assert stored is not None


def test_run_history_records_counts_per_stream(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=12, orders=7, page_size=5)
    cycle = hub.sync()
    with hub.store.connect() as conn:
        rows = conn.execute(
            select(
                run_t.c.stream, run_t.c.status, run_t.c.pages, run_t.c.records_read,
                run_t.c.inserted, run_t.c.run_id,
            ).order_by(run_t.c.id)
        ).all()  # fmt: skip
    assert [(r.stream, r.status, r.pages, r.records_read, r.inserted) for r in rows] == [
        ("contacts", "ok", 3, 12, 12),
        ("orders", "ok", 2, 7, 7),
        ("survey_responses", "ok", 0, 0, 0),
    ]
    assert {r.run_id for r in rows} == {cycle.run_id}


def test_dry_run_writes_nothing(hub: Hub) -> None:
    hub.connectors["shop"] = source(contacts=10, orders=10)
    cycle = hub.sync(dry_run=True)
    assert cycle.connectors[0].streams[0].counts.inserted == 10
    assert count(hub, customer_t) == 0
    assert count(hub, run_t) == 0
    assert count(hub, cursor_t) == 0


def test_a_source_over_http_gives_the_same_records_as_in_process(hub: Hub) -> None:
    """The benchmark's set-up (the tool in its own server) changes nothing in the store."""
    settings = {"contacts": 40, "orders": 90, "survey_responses": 12, "page_size": 16}
    hub.connectors["shop"] = source(**settings, bad_every=13)
    local = hub.sync()
    first = snapshot(hub.store)
    app = create_app(SyntheticSettings(**settings, bad_every=13))
    with serve(app) as url:
        hub.connectors["shop"] = source(**settings, bad_every=13, base_url=url)
        remote = hub.sync(full=True)
    assert snapshot(hub.store) == first
    for here, there in zip(local.connectors[0].streams, remote.connectors[0].streams, strict=True):
        assert (there.counts.read, there.counts.rejected) == (
            here.counts.read,
            here.counts.rejected,
        )
        assert there.counts.unchanged == here.counts.inserted  # same content, same hashes
        assert there.api_calls == -(-there.counts.read // 16)  # one request per page
