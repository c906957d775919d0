"""The command line: help, plugins, check and db, run as a user would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clm_hub.cli import cli

ROOT = Path(__file__).resolve().parents[1]
ACME = ROOT / "tests" / "support" / "acme.py"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "250")  # rich tables would fold long paths otherwise
    return CliRunner()


def write_config(tmp_path: Path, body: str) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    shutil.copy(ACME, plugins / "acme_plugin.py")
    path = tmp_path / "hub.toml"
    path.write_text(
        f'database_url = "sqlite:///{tmp_path}/hub.sqlite3"\nplugins_dir = ["plugins"]\n{body}'
    )
    return path


def test_console_script_help_lists_the_verbs() -> None:
    exe = Path(sys.executable).with_name("clm-hub")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    for verb in ("demo", "run", "sync", "stages", "report", "status", "plugins", "check", "db"):
        assert verb in result.stdout


def test_plugins_lists_origin_version_and_capabilities(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    result = runner.invoke(cli, ["plugins", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "acme" in result.output
    assert "1.2.3" in result.output
    assert "contacts, tag_push" in result.output
    assert "acme_plugin.py" in result.output


def test_plugins_reports_a_broken_plugin_and_fails(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    (tmp_path / "plugins" / "broken.py").write_text("raise ImportError('missing sdk')\n")
    result = runner.invoke(cli, ["plugins", "--config", str(config)])
    assert result.exit_code == 1
    assert "plugin 'broken'" in result.output and "missing sdk" in result.output
    assert "acme" in result.output


def test_check_passes_on_a_complete_config(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, '[connectors.crm]\nplugin = "acme"\naccount = "a1"\n')
    monkeypatch.setenv("CLM_HUB_CONNECTORS__CRM__API_TOKEN", "tok-123456")
    result = runner.invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "✓ crm" in result.output
    assert "tok-123456" not in result.output


def test_check_names_missing_credentials_and_unknown_plugins(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        '[connectors.crm]\nplugin = "acme"\naccount = "a1"\n[connectors.shop]\nplugin = "shopfy"\n',
    )
    result = runner.invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert f"{config}: connectors.crm.api_token: Field required" in result.output
    assert "no connector named 'shopfy'" in result.output
    assert "2 problem(s) found" in result.output


def test_check_reports_a_config_error_without_a_traceback(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('tag_prefix = "Not Valid"\n')
    result = runner.invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert f"{config}: tag_prefix:" in result.output
    assert "Traceback" not in result.output


def test_config_path_from_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, "")
    monkeypatch.setenv("CLM_HUB_CONFIG", str(config))
    result = runner.invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert str(config) in result.output


def test_example_config_checks_clean(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["check", "--config", str(ROOT / "config" / "hub.example.toml")])
    assert result.exit_code == 0, result.output


def test_db_upgrade_creates_then_reports_current(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    first = runner.invoke(cli, ["db", "upgrade", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert "upgraded from empty to" in first.output
    second = runner.invoke(cli, ["db", "upgrade", "--config", str(config)])
    assert "already at revision" in second.output
    current = runner.invoke(cli, ["db", "current", "--config", str(config)])
    assert "up to date" in current.output


def test_db_upgrade_with_an_unknown_driver_says_what_to_install(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('database_url = "mysql+nodriver://x/y"\n')
    result = runner.invoke(cli, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 1
    assert "not installed" in result.output


def test_check_asks_each_tool_whether_it_accepts_the_credentials(
    runner: CliRunner, tmp_path: Path
) -> None:
    from clm_hub.sandbox import serve
    from clm_hub_plugins.hubspot.simstate import DEFAULT_TOKEN, HubSpotState
    from clm_hub_plugins.hubspot.simulator import create_app

    def config_with(url: str, token: str) -> Path:
        return write_config(
            tmp_path, f'[connectors.crm]\nplugin = "hubspot"\nbase_url = "{url}"\n'
            f'access_token = "{token}"\n',
        )  # fmt: skip

    with serve(create_app(HubSpotState())) as url:
        good = runner.invoke(cli, ["check", "--config", str(config_with(url, DEFAULT_TOKEN))])
        assert good.exit_code == 0, good.output
        assert "✓ crm (hubspot): credentials accepted" in good.output

        wrong = "pat-na1-wrong-0000"
        bad = runner.invoke(cli, ["check", "--config", str(config_with(url, wrong))])
        assert bad.exit_code == 1, bad.output
        assert "✗ crm (hubspot)" in bad.output
        assert "HubSpot refused the credentials (401)" in bad.output  # and which setting
        assert "access_token" in bad.output
        assert wrong not in bad.output

        offline = runner.invoke(
            cli, ["check", "--offline", "--config", str(config_with(url, wrong))]
        )
        assert offline.exit_code == 0, offline.output  # the config itself is valid


def test_piped_output_gets_wide_tables_unless_columns_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.table import Table

    from clm_hub.cli_support import PIPED_WIDTH, console

    table = Table()
    for name in ("connector", "stream", "status", "read", "new", "changed", "unchanged",
                 "rejected", "API calls", "retries", "429s"):  # fmt: skip
        table.add_column(name)
    monkeypatch.delenv("COLUMNS", raising=False)
    out = console()
    assert not out.is_terminal and out.width == PIPED_WIDTH
    with out.capture() as captured:
        out.print(table)
    assert "unchanged" in captured.get() and "API calls" in captured.get()
    monkeypatch.setenv("COLUMNS", "70")
    assert console().width == 70
