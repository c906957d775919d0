"""`clm-hub sync`, `status` and `customers forget` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clm_hub.cli import cli

PLUGIN = "from clm_hub.testing.synthetic import register_connectors  # noqa: F401\n"


@pytest.fixture
def config(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "250")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "synthetic_source.py").write_text(PLUGIN)
    path = tmp_path / "hub.toml"
    path.write_text(
        f'database_url = "{database_url}"\nplugins_dir = ["plugins"]\nlog_level = "warning"\n'
        '[connectors.shop]\nplugin = "synthetic"\ncontacts = 20\norders = 40\nbad_every = 15\n'
        '[connectors.crm]\nplugin = "synthetic"\nid_prefix = "c"\ncontacts = 10\norders = 0\n'
    )
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_sync_refuses_a_store_that_is_not_migrated(config: Path) -> None:
    code, output = run("sync", "--config", str(config))
    assert code == 1
    assert "run `clm-hub db upgrade`" in output


def test_sync_then_status_show_runs_cursors_and_rejected_records(config: Path) -> None:
    assert run("db", "upgrade", "--config", str(config))[0] == 0
    code, output = run("sync", "--config", str(config))
    assert code == 0, output
    assert "shop" in output and "crm" in output
    assert "20 customer(s) changed" in output  # people 0-19; 0-9 are in both tools
    code, output = run("status", "--config", str(config))
    assert code == 0, output
    assert "Last runs" in output and "Cursors" in output
    assert "Input should be a valid datetime" in output
    code, output = run("status", "--config", str(config), "--format", "json")
    report = json.loads(output)
    assert {r["stream"] for r in report["runs"]} == {"contacts", "orders", "survey_responses"}
    assert {(c["connector"], c["stream"], c["count"]) for c in report["rejected_counts"]} == {
        ("shop", "contacts", 1),
        ("shop", "orders", 2),
    }


def test_sync_exits_non_zero_naming_the_failed_connector(config: Path) -> None:
    text = config.read_text() + '[connectors.down]\nplugin = "synthetic"\nid_prefix = "d"\n'
    config.write_text(text + "fail_after_pages = 0\n")
    run("db", "upgrade", "--config", str(config))
    code, output = run("sync", "--config", str(config))
    assert code == 1
    assert "failed: down: contacts: UpstreamError" in output


def test_sync_of_one_named_connector(config: Path) -> None:
    run("db", "upgrade", "--config", str(config))
    code, output = run("sync", "--config", str(config), "--connector", "crm")
    assert code == 0, output
    assert "10 customer(s) changed" in output
    code, output = run("sync", "--config", str(config), "--connector", "nope")
    assert code == 1
    assert "unknown connector id(s) nope" in output


def test_forget_erases_a_person_and_says_what_tools_must_do(config: Path) -> None:
    run("db", "upgrade", "--config", str(config))
    run("sync", "--config", str(config))
    code, output = run(
        "customers", "forget", "Person3@example.com", "--yes", "--config", str(config)
    )
    assert code == 0, output
    assert "erased 1 customer(s)" in output
    assert "shop: its API cannot erase: erase sc3" in output
    # a later full sync does not bring the person back
    run("sync", "--config", str(config), "--full")
    code, output = run(
        "customers", "forget", "person3@example.com", "--yes", "--config", str(config)
    )
    assert "no customer with person3@example.com is known" in output
