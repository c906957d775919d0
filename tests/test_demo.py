"""`clm-hub demo` at small size: the invariants a newcomer relies on."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console
from sqlalchemy import func, select, table

from clm_hub.cli import cli
from clm_hub.demo.progress import demo_progress
from clm_hub.demo.runner import DemoWorld
from clm_hub.demo.shop import Person, people
from clm_hub.linking import customer_t, identity_t, state_t


def writes(world: DemoWorld) -> tuple[int, int]:
    shop = sum(1 for r in world.shop.requests if "tagsAdd" in r.query or "tagsRemove" in r.query)
    crm = sum(1 for r in world.crm.requests if r.path.endswith("/batch/update"))
    return shop, crm


@pytest.mark.slow
def test_demo_invariants_hold(tmp_path: Path) -> None:
    with DemoWorld(customers=150, seed=3, folder=tmp_path) as world:
        first = world.cycle(apply_large=True)
        assert not first.failed, [c.reason for c in first.failed]
        with world.engine.connect() as conn:
            customers = conn.execute(select(func.count()).select_from(customer_t)).scalar_one()
            states = conn.execute(select(func.count()).select_from(state_t)).scalar_one()
            linked = conn.execute(
                select(
                    identity_t.c.source, identity_t.c.external_id, state_t.c.stage,
                    state_t.c.nps_class,
                ).join(state_t, state_t.c.customer_id == identity_t.c.customer_id)
            ).all()  # fmt: skip
            answers = conn.execute(
                select(func.count()).select_from(table("survey_response"))
            ).scalar_one()
        assert states == customers  # every customer has exactly one stage
        assert world.seeded.answers > 0
        assert answers == world.seeded.answers  # every NPS answer landed on a customer
        stage_of = {(source, ext): stage for source, ext, stage, _ in linked}
        nps_of = {(source, ext): nps for source, ext, _, nps in linked}
        assert any(nps_of.values())
        for customer in world.shop.customers.values():
            owned = [t for t in customer.tags if t.startswith("clm:")]
            foreign = [t for t in customer.tags if not t.startswith("clm:")]
            assert all(t.startswith("clm:") for t in owned)
            assert [t for t in owned if t.startswith("clm:stage:")] == [
                f"clm:stage:{stage_of[('shop', str(customer.id))]}"
            ]
            nps = nps_of[("shop", str(customer.id))]
            assert [t for t in owned if t.startswith("clm:nps:")] == (
                [f"clm:nps:{nps}"] if nps else []
            )  # the survey tool's answers reach the shop as tags
            assert foreign in ([], ["newsletter"])  # the shop's own tags survive
        with world.crm.lock:
            for contact_id, contact in world.crm.objects["contacts"].items():
                assert contact.properties.get("clm_stage") == stage_of[("crm", str(contact_id))]
        before = writes(world)
        second = world.cycle()
        assert not second.failed
        assert writes(world) == before  # nothing changed: no write calls


def test_demo_command_runs_and_says_where_to_look_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(cli, ["demo", "--customers", "60", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Customers per stage" in result.output
    assert "Pushed:" in result.output
    assert f"clm-hub status --config {tmp_path / 'hub.toml'}" in result.output
    status = CliRunner().invoke(cli, ["status", "--config", str(tmp_path / "hub.toml")])
    assert status.exit_code == 0, status.output


def test_nps_answers_are_deterministic_and_follow_behaviour() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    shop = list(people(3000, seed=11, now=now))
    assert [p.nps for p in shop[:200]] == [p.nps for p in people(200, seed=11, now=now)]
    answered = [p for p in shop if p.nps]
    assert 0.15 < len(answered) / len(shop) < 0.5
    assert all(0 <= a.score <= 10 for p in answered for a in p.nps)

    def promoter_share(group: list[Person]) -> float:
        scores = [a.score for p in group for a in p.nps]
        return sum(s >= 9 for s in scores) / len(scores)

    frequent = [p for p in answered if sum(x.status == "PAID" for x in p.purchases) >= 4]
    refunders = [p for p in answered if any(x.status == "REFUNDED" for x in p.purchases)]
    assert promoter_share(frequent) > promoter_share(refunders) + 0.2


def test_large_shops_report_progress_as_plain_lines_off_a_terminal() -> None:
    out = Console(file=io.StringIO(), force_terminal=False, width=120)
    with demo_progress(out, total=50_000, enabled=True) as (seeding, sync):
        for n in range(1000, 50_001, 1000):
            seeding.seeded(n)
        assert sync is not None
        sync.stream_started("shop", "orders", "full read")
    lines = out.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[0] == "seeding: 5,000 of 50,000 people"
    assert lines[9] == "seeding: 50,000 of 50,000 people"
    assert lines[10] == "sync: shop orders started (full read)"


@pytest.mark.slow
def test_owned_tags_changed_by_hand_in_the_tool_are_put_back(tmp_path: Path) -> None:
    with DemoWorld(customers=80, seed=5, folder=tmp_path) as world:
        assert not world.cycle(apply_large=True).failed
        tagged = [
            c for c in world.shop.customers.values() if any(t.startswith("clm:") for t in c.tags)
        ]
        victim, other = tagged[0], tagged[1]
        wanted_victim, wanted_other = list(victim.tags), list(other.tags)
        stage_tag = next(t for t in victim.tags if t.startswith("clm:stage:"))
        # A merchant removes the hub's stage tag from one customer and types an owned-looking
        # tag onto another; both keep their own tags.
        world.shop.update_customer(victim.id, tags=[t for t in victim.tags if t != stage_tag])
        world.shop.update_customer(other.id, tags=[*other.tags, "clm:stage:vip-by-hand"])
        before = writes(world)
        assert not world.cycle().failed
        assert sorted(world.shop.customers[victim.id].tags) == sorted(wanted_victim)
        assert sorted(world.shop.customers[other.id].tags) == sorted(wanted_other)
        assert writes(world)[0] > before[0]  # the repair was written to Shopify
        settled = writes(world)
        assert not world.cycle().failed
        assert writes(world) == settled  # and then nothing more
