"""The stage-only run: stages that change with time alone reach every tool without a pull."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from clm_hub.daemon import Daemon
from clm_hub.lifecycle import StageCatchUp
from clm_hub.plugins import build_plugin_registry
from clm_hub.sandbox import serve
from clm_hub.scheduler import DaemonSettings
from clm_hub.settings import HubSettings
from clm_hub.stages.config import load_rules
from clm_hub.store import upgrade
from clm_hub.store.tables import SyncRun
from clm_hub.testing import synthetic
from tests.daemon import hookbox

run_t = SyncRun.__table__  # type: ignore[attr-defined]
PEOPLE = 20
# Every synthetic order is placed on 2025-01-01; the fallback purchase cycle is 30 days, so
# a one-time buyer is "new" ten days later and at-risk, then lapsed, months later.
SOON = datetime(2025, 1, 10, tzinfo=UTC)
LATER = datetime(2025, 7, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


Tools = dict[str, tuple[hookbox.HookboxState, str]]


@pytest.fixture
def tools() -> Iterator[Tools]:
    """Two tag tools (a CRM and an email tool) that both know every synthetic buyer."""
    states = {name: hookbox.HookboxState() for name in ("crm", "mail")}
    for state in states.values():
        for i in range(PEOPLE):
            state.add(f"c{i}", f"person{i}@example.com", updated_at=synthetic.EPOCH)
    with (
        serve(hookbox.create_app(states["crm"])) as crm,
        serve(hookbox.create_app(states["mail"])) as mail,
    ):
        yield {"crm": (states["crm"], crm), "mail": (states["mail"], mail)}


@pytest.fixture
async def daemon(engine: Engine, database_url: str, tools: Tools) -> AsyncIterator[Daemon]:
    upgrade(engine)
    clock = Clock(SOON)
    # Every buyer moves at once here; the safety valve would rightly hold such a push.
    box = {"plugin": "hookbox", "api_key": "key-0123456789", "push": {"max_change_share": 1.0}}
    settings = HubSettings(
        database_url=database_url,
        connectors={
            "shop": {"plugin": "synthetic", "contacts": PEOPLE, "orders": PEOPLE},
            **{name: {**box, "base_url": url} for name, (_, url) in tools.items()},
        },
    )
    registry = build_plugin_registry(
        entry_points=False, extra={"hookbox": hookbox, "synthetic": synthetic}
    )
    made = Daemon(
        settings, registry, engine, config=DaemonSettings(),
        recompute=StageCatchUp(engine, load_rules(None), now=clock), now=clock,
    )  # fmt: skip
    yield made
    await made.gate.shutdown()
    await made.webhooks.aclose()


def stage_tags(state: hookbox.HookboxState) -> dict[str, str]:
    return {
        cid: tag
        for cid in state.contacts
        for tag in state.owned_tags(cid)
        if tag.startswith("clm:stage:")
    }


def runs_since(engine: Engine, first_id: int) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(run_t.c.connector, run_t.c.stream, run_t.c.kind).where(run_t.c.id > first_id)
        ).all()
    return sorted((connector, stream, kind) for connector, stream, kind in rows)


def last_run_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return max(conn.execute(select(run_t.c.id)).scalars(), default=0)


async def test_time_based_stage_changes_reach_every_tool_without_a_pull(
    daemon: Daemon, engine: Engine, tools: Tools
) -> None:
    for connector_id in ("shop", "crm", "mail"):
        await daemon.run_connector(connector_id)
    before_tags = stage_tags(tools["crm"][0])
    assert before_tags == stage_tags(tools["mail"][0])
    assert len(before_tags) == PEOPLE
    assert set(before_tags.values()) == {"clm:stage:new", "clm:stage:prospect"}
    buyers = {cid for cid, tag in before_tags.items() if tag == "clm:stage:new"}
    writes = {name: state.write_calls for name, (state, _) in tools.items()}
    before = last_run_id(engine)

    # Nobody buys for six months: no new data, but every buyer's stage is now different.
    assert isinstance(daemon.now, Clock)
    daemon.now.now = LATER
    assert isinstance(daemon._recompute, StageCatchUp)
    daemon._recompute.now = daemon.now
    await daemon.run_stages()

    for name, (state, _) in tools.items():
        tags = stage_tags(state)
        assert {tags[cid] for cid in buyers} <= {"clm:stage:at-risk", "clm:stage:lapsed"}, name
        assert {cid: tags[cid] for cid in set(tags) - buyers} == {
            cid: before_tags[cid] for cid in set(before_tags) - buyers
        }  # prospects stay prospects
        assert state.write_calls > writes[name]
    assert stage_tags(tools["crm"][0]) == stage_tags(tools["mail"][0])
    # Nothing was pulled: the run history holds only the two pushes, as stage-only runs.
    assert runs_since(engine, before) == [("crm", "push", "stages"), ("mail", "push", "stages")]
    triggers = daemon.metrics.registry.get_sample_value(
        "clm_hub_cycle_triggers_total", {"connector": "crm", "trigger": "stages"}
    )
    assert triggers == 1

    # Another stage-only run with no time passed changes nothing and writes nothing.
    writes = {name: state.write_calls for name, (state, _) in tools.items()}
    await daemon.run_stages()
    assert {name: state.write_calls for name, (state, _) in tools.items()} == writes
