"""The ``stages`` and ``report`` click commands, invoked directly with CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from clm_hub.stages.commands import report, stages
from tests.stages.conftest import Shop
from tests.stages.test_config import DEFAULT


@pytest.fixture
def config(tmp_path: Path, store: Engine) -> Path:
    path = tmp_path / "hub.toml"
    url = store.url.render_as_string(hide_password=False)
    path.write_text(f'database_url = "{url}"\n')
    return path


def _run(command: object, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(command, list(args))  # type: ignore[arg-type]
    return result.exit_code, result.output


def test_recompute_full_then_counts_per_stage(config: Path, shop: Shop) -> None:
    shop.buyer(0, email="ann@shop.test")
    shop.customer()
    code, out = _run(
        stages, "--config", str(config), "--recompute", "--full", "--as-of", "2025-01-10"
    )
    assert code == 0 and "full recompute with a new calibration: 2 customers" in out
    code, out = _run(stages, "--config", str(config))
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["prospect", "1"], ["new", "1"], ["total", "2"],
    ]  # fmt: skip


def test_explain_prints_the_rule_that_fired(config: Path, shop: Shop) -> None:
    shop.buyer(0, email="ann@shop.test")
    _run(stages, "--config", str(config), "--recompute", "--as-of", "2025-01-10")
    code, out = _run(stages, "--config", str(config), "--explain", "Ann@Shop.test",
                     "--as-of", "2025-01-10")  # fmt: skip
    assert code == 0 and "✓ new.first-purchase -> new" in out


def test_explain_of_an_unknown_email_exits_1(config: Path, shop: Shop) -> None:
    _run(stages, "--config", str(config), "--recompute", "--as-of", "2025-01-10")
    code, out = _run(stages, "--config", str(config), "--explain", "x@shop.test")
    assert code == 1 and "no customer with email 'x@shop.test'" in out


def test_preview_prints_a_transition_matrix(config: Path, shop: Shop, tmp_path: Path) -> None:
    shop.buyer(0)
    _run(stages, "--config", str(config), "--recompute", "--as-of", "2025-04-11")
    rules = tmp_path / "rules.toml"
    rules.write_text(DEFAULT.replace('lapsed = "4 cycles"', 'lapsed = "3 cycles"'))
    code, out = _run(stages, "--config", str(config), "--preview", str(rules),
                     "--as-of", "2025-04-11")  # fmt: skip
    assert code == 0 and "1 of 1 customers would change stage" in out


def test_report_formats(config: Path, shop: Shop) -> None:
    shop.buyer(0, 20)
    _run(stages, "--config", str(config), "--recompute", "--as-of", "2025-01-30")
    code, out = _run(report, "--config", str(config), "--format", "json", "--as-of", "2025-01-30")
    assert code == 0 and json.loads(out)["stages"][0]["stage"] == "loyal"
    code, out = _run(report, "--config", str(config), "--format", "csv")
    assert code == 0 and out.startswith("section,key,metric,value\n")
    code, out = _run(report, "--config", str(config))
    assert code == 0 and "stages" in out


def test_one_action_at_a_time(config: Path) -> None:
    code, out = _run(stages, "--config", str(config), "--recompute", "--explain", "a@b.c")
    assert code == 2 and "use one of --explain, --recompute at a time" in out


def test_a_bad_as_of_is_a_user_error(config: Path) -> None:
    code, out = _run(report, "--config", str(config), "--as-of", "yesterday")
    assert code == 1 and "--as-of 'yesterday' is not an ISO date" in out


def test_an_unmigrated_store_asks_for_db_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(f'database_url = "sqlite:///{tmp_path}/empty.sqlite3"\n')
    code, out = _run(stages, "--config", str(path))
    assert code == 1 and "run `clm-hub db upgrade`" in out
