"""Write-back: the right owned tags on the right records, minimal, paced and exact."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete, insert, select

from clm_hub.linking import customer_t, identity_t, state_t
from clm_hub.plugins import build_plugin_registry
from clm_hub.push.mapping import PushMapping
from clm_hub.runs import RunStatus
from clm_hub.settings import HubSettings
from clm_hub.store.tables import RejectedRecord, SyncRun
from clm_hub.sync import CycleResult, SyncEngine
from tests.support import tagbox

NOW = datetime(2026, 6, 1, tzinfo=UTC)
rejected_t = RejectedRecord.__table__  # type: ignore[attr-defined]
run_t = SyncRun.__table__  # type: ignore[attr-defined]


class Box:
    """The tagbox tool, the hub wired to it, and helpers to set stages."""

    def __init__(self, store: Engine, people: int = 30) -> None:
        self.store = store
        self.state = tagbox.TagboxState()
        for i in range(people):
            self.state.add(f"t{i}", f"p{i}@example.com", ["newsletter"] if i % 3 == 0 else [])
        self.push: dict[str, Any] = {}
        self.registry = build_plugin_registry(entry_points=False, extra={"tagbox": tagbox})

    def cycle(self, **kwargs: Any) -> CycleResult:
        settings = HubSettings(
            connectors={
                "box": {"plugin": "tagbox", "api_key": "key-123456", "push": self.push,
                        "limit": self.state.limit, "window": self.state.window}
            }
        )  # fmt: skip
        transport = httpx.ASGITransport(app=tagbox.create_app(self.state))
        engine = SyncEngine(settings, self.registry, self.store, transport=transport)
        return asyncio.run(engine.run_cycle(**kwargs))

    def set_stages(self, stages: dict[int, tuple[str, list[str]]]) -> None:
        """Person index -> (stage, segments), as the stage engine would store them."""
        with self.store.begin() as conn:
            ids: dict[str, int] = {
                ext: customer
                for ext, customer in conn.execute(
                    select(identity_t.c.external_id, identity_t.c.customer_id)
                )
            }
            for i, (stage, segments) in stages.items():
                customer = ids[f"t{i}"]
                conn.execute(delete(state_t).where(state_t.c.customer_id == customer))
                conn.execute(
                    insert(state_t),
                    {"customer_id": customer, "stage": stage, "stage_since": NOW,
                     "segments": segments, "computed_at": NOW, "explanation": {}},
                )  # fmt: skip


@pytest.fixture
def box(store: Engine) -> Box:
    return Box(store)


def everyone(box: Box, stage: str = "new", segments: list[str] | None = None) -> None:
    box.set_stages({i: (stage, segments or []) for i in range(len(box.state.contacts))})


def test_first_push_tags_everyone_and_keeps_foreign_tags(box: Box) -> None:
    box.cycle()  # pull: the hub learns the contacts
    everyone(box, "new", ["promising"])
    result = box.cycle()
    assert result.connectors[0].push is not None
    assert result.connectors[0].push.counts.confirmed == 30
    assert box.state.tags("t0") == ["clm:segment:promising", "clm:stage:new", "newsletter"]
    assert box.state.tags("t1") == ["clm:segment:promising", "clm:stage:new"]
    assert box.state.write_calls == 3  # 30 records in full batches of 10


def test_an_unchanged_cycle_makes_no_write_calls(box: Box) -> None:
    box.cycle()
    everyone(box)
    box.cycle()
    calls = box.state.write_calls
    again = box.cycle()  # the pull sees our own tags come back: an echo, not a change
    assert box.state.write_calls == calls
    assert again.dirty_customers == set()
    assert again.connectors[0].push is not None and again.connectors[0].push.plan.changes == 0


def test_a_stage_change_replaces_the_old_tag_in_one_update(box: Box) -> None:
    box.cycle()
    everyone(box, "new")
    box.cycle()
    box.set_stages({4: ("loyal", [])})
    box.cycle()
    assert box.state.tags("t4") == ["clm:stage:loyal"]
    assert box.state.batches[-1] == ["t4"]


def test_tags_a_person_added_by_hand_survive(box: Box) -> None:
    box.cycle()
    everyone(box, "new")
    box.cycle()
    box.state.contacts["t1"]["tags"].append("clm-lookalike")
    box.state.contacts["t1"]["tags"].append("Clm:vip")
    box.set_stages({1: ("at-risk", [])})
    box.cycle()
    assert box.state.tags("t1") == ["Clm:vip", "clm-lookalike", "clm:stage:at-risk"]


def test_a_failing_record_is_retried_later_then_rejected_with_the_reason(box: Box) -> None:
    box.push = {"max_attempts": 2, "retry_after": 0}
    box.state.fail_ids["t2"] = "contact is archived"
    box.cycle()
    everyone(box)
    first = box.cycle()
    push = first.connectors[0].push
    assert push is not None
    assert (push.counts.confirmed, push.counts.failed) == (29, 1)
    assert first.connectors[0].status is RunStatus.PARTIAL
    box.cycle()  # second and last attempt
    with box.store.connect() as conn:
        [(ext, reason)] = conn.execute(
            select(rejected_t.c.external_id, rejected_t.c.reason).where(
                rejected_t.c.stream == "push"
            )
        ).all()
    assert ext == "t2"
    assert reason == "gave up after 2 attempts: contact is archived"
    calls = box.state.write_calls
    box.cycle()  # given up: not sent again until the desired tags change
    assert box.state.write_calls == calls


def test_a_batch_refused_for_one_record_is_split_so_the_others_land(box: Box) -> None:
    box.state.poison_ids.add("t5")
    box.cycle()
    everyone(box)
    result = box.cycle()
    push = result.connectors[0].push
    assert push is not None
    assert (push.counts.confirmed, push.counts.failed) == (29, 1)
    assert box.state.tags("t7") == ["clm:stage:new"]
    assert box.state.tags("t5") == []


def test_a_large_change_is_held_until_allowed(box: Box) -> None:
    box.cycle()
    everyone(box, "new")
    box.cycle()
    everyone(box, "loyal")  # a rule edit would re-tag everybody
    held = box.cycle()
    push = held.connectors[0].push
    assert push is not None and push.held
    assert box.state.tags("t4") == ["clm:stage:new"]
    allowed = box.cycle(apply_large=True)
    assert allowed.connectors[0].push is not None and not allowed.connectors[0].push.held
    assert box.state.tags("t4") == ["clm:stage:loyal"]


def test_dry_run_plans_without_writing(box: Box) -> None:
    box.cycle()
    everyone(box, "new", ["champions"])
    result = box.cycle(dry_run=True)
    push = result.connectors[0].push
    assert push is not None
    assert push.plan.changes == 30
    assert push.plan.by_kind == {"add stage tag": 30, "add segment tag": 30}
    assert box.state.write_calls == 0


def test_pacing_respects_the_tools_limit_without_429s(store: Engine) -> None:
    box = Box(store, people=200)
    box.state.limit, box.state.window = 5, 0.25  # 20 write calls per second
    box.cycle()
    everyone(box)
    result = box.cycle()
    assert box.state.throttled == 0
    push = result.connectors[0].push
    assert push is not None and push.counts.confirmed == 200
    assert push.counts.batch_fill(tagbox.MAX_BATCH) == 1.0


def test_push_run_history_records_the_counts(box: Box) -> None:
    box.cycle()
    everyone(box)
    box.cycle()
    with box.store.connect() as conn:
        row = conn.execute(select(run_t).where(run_t.c.stream == "push")).one()
    assert (row.planned, row.sent, row.confirmed, row.failed, row.batches) == (30, 30, 30, 0, 3)


def test_a_forgotten_person_loses_our_tags(box: Box) -> None:
    box.cycle()
    everyone(box)
    box.cycle()
    with box.store.begin() as conn:
        customer = conn.execute(
            select(identity_t.c.customer_id).where(identity_t.c.external_id == "t7")
        ).scalar_one()
        conn.execute(customer_t.update().where(customer_t.c.id == customer).values(erased_at=NOW))
    box.cycle()
    assert box.state.tags("t7") == []


def test_push_mapping_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        PushMapping.model_validate({"max_attempt": 3})


def test_sync_command_prints_the_plan_and_the_held_hint(
    store: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from clm_hub.cli import cli
    from clm_hub.sandbox import serve

    monkeypatch.setenv("COLUMNS", "250")
    box = Box(store)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "box.py").write_text(
        "from tests.support.tagbox import register_connectors  # noqa: F401\n"
    )
    with serve(tagbox.create_app(box.state)) as url:
        config = tmp_path / "hub.toml"
        config.write_text(
            f'database_url = "{store.url.render_as_string(hide_password=False)}"\n'
            'plugins_dir = ["plugins"]\nlog_level = "error"\n'
            f'[connectors.box]\nplugin = "tagbox"\napi_key = "k-123456"\nbase_url = "{url}"\n'
        )
        runner = CliRunner()
        first = runner.invoke(cli, ["sync", "--config", str(config)])
        assert first.exit_code == 0, first.output
        # The stage engine ran: nobody has bought, so everybody is a prospect.
        assert box.state.tags("t1") == ["clm:stage:prospect"]
        calls = box.state.write_calls
        everyone(box, "new")
        dry = runner.invoke(cli, ["sync", "--config", str(config), "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "Write-back plan (nothing sent)" in dry.output
        assert "add stage tag 30" in dry.output and "remove stage tag 30" in dry.output
        assert "e.g. t0: +clm:stage:new -clm:stage:prospect" in dry.output
        assert box.state.write_calls == calls
        held = runner.invoke(cli, ["sync", "--config", str(config)])
        assert "held" in held.output and "--apply-large" in held.output
        assert box.state.write_calls == calls
        everyone(box, "loyal")
        applied = runner.invoke(cli, ["sync", "--config", str(config), "--apply-large"])
        assert applied.exit_code == 0, applied.output
    assert box.state.tags("t1") == ["clm:stage:loyal"]


def test_namespaced_segments_become_segment_and_nps_tags() -> None:
    from clm_hub.push.mapping import desired_state

    desired = desired_state(
        stage="loyal",
        segments=["nps:promoter", "rfm:champions", "churn:high"],
        nps_class=None,
        mapping=PushMapping(),
        prefix="clm",
        use_tags=True,
        use_fields=True,
    )
    assert desired.tags == {
        "clm:stage:loyal", "clm:segment:champions", "clm:segment:churn-high", "clm:nps:promoter",
    }  # fmt: skip
    assert desired.fields == {
        "clm_stage": "loyal", "clm_segment": "champions;churn-high", "clm_nps": "promoter",
    }  # fmt: skip
