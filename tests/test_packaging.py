"""The distribution ships every package and data file the code needs."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return set(tomllib.load(handle)["tool"]["setuptools"]["packages"])


def _on_disk() -> set[str]:
    found = set()
    for root, prefix in (
        (ROOT / "src" / "clm_hub", "clm_hub"),
        (ROOT / "plugins", "clm_hub_plugins"),
    ):
        for init in root.rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            if "__pycache__" in parts:
                continue
            found.add(".".join((prefix, *parts)))
    return found


def test_every_package_folder_is_declared_in_pyproject() -> None:
    assert _on_disk() == _declared()


def test_built_in_plugins_are_registered_as_entry_points() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        entry_points = tomllib.load(handle)["project"].get("entry-points", {}).get("clm_hub", {})
    plugin_folders = {p.parent.name for p in (ROOT / "plugins").glob("*/__init__.py")}
    assert {value.split(".")[1] for value in entry_points.values()} == plugin_folders
