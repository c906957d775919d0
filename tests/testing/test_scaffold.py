"""``clm-hub plugin new``: a package that installs, registers and passes its own tests.

The generated package is tested as its author would run it, in a subprocess with this
virtualenv's Python and ``PYTHONPATH=<package>/src`` (nothing is installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from clm_hub.cli import cli

NAME = "acme_crm"
ROOT = Path(__file__).resolve().parents[2]


def plugin_new(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["plugin", "new", *args])
    return result.exit_code, result.output


def run(package: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=package,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package ``plugin new acme_crm`` writes."""
    where = tmp_path_factory.mktemp("scaffold")
    code, output = plugin_new(NAME, "--dir", str(where))
    assert code == 0, output
    return where / "clm-hub-acme-crm"


def test_generated_package_passes_its_own_contract_tests(package: Path) -> None:
    result = run(package, "pytest", "-q", "-p", "no:cacheprovider", PYTHONPATH=str(package / "src"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_generated_pyproject_registers_the_plugin_entry_point(package: Path) -> None:
    with (package / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    assert project["name"] == "clm-hub-acme-crm"
    assert project["entry-points"]["clm_hub"] == {NAME: "clm_hub_acme_crm"}
    assert any(dep.startswith("clm-hub>=") for dep in project["dependencies"])


def test_generated_package_has_connector_simulator_harness_and_tests(package: Path) -> None:
    src = package / "src" / "clm_hub_acme_crm"
    expected = {"__init__.py", "connector.py", "simulator.py", "testkit.py", "py.typed"}
    assert {p.name for p in src.iterdir()} >= expected
    assert (package / "tests" / "test_contract.py").is_file()
    assert "class AcmeCrm(Connector[AcmeCrmSettings])" in (src / "connector.py").read_text()


def test_generated_code_is_ruff_clean(package: Path) -> None:
    lint = run(package, "ruff", "check", "--no-cache", ".")
    form = run(package, "ruff", "format", "--check", "--no-cache", ".")
    assert (lint.returncode, form.returncode) == (0, 0), lint.stdout + form.stdout


@pytest.mark.slow
def test_generated_code_is_mypy_strict_clean(package: Path, tmp_path: Path) -> None:
    # An editable clm-hub is invisible to mypy, so the core's sources go on MYPYPATH;
    # errors inside the core itself are the core's own check's business.
    result = run(
        package,
        "mypy",
        "--follow-imports=silent",
        "--cache-dir",
        str(tmp_path / "mypy"),
        "src",
        "tests",
        MYPYPATH=f"{ROOT / 'src'}{os.pathsep}{package / 'src'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_plugin_new_refuses_to_overwrite_an_existing_folder(tmp_path: Path) -> None:
    existing = tmp_path / "clm-hub-acme"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    code, output = plugin_new("acme", "--dir", str(tmp_path))
    assert code == 1
    assert "already exists" in output
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("name", ["Acme", "acme-crm", "1acme", "acme__crm", "_acme", "class"])
def test_plugin_new_rejects_a_name_that_is_not_a_lowercase_identifier(
    tmp_path: Path, name: str
) -> None:
    code, output = plugin_new(name, "--dir", str(tmp_path))
    assert code == 1
    assert "lower-case Python identifier" in output
    assert list(tmp_path.iterdir()) == []
