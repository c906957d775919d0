"""Plugin discovery: entry points, plugins_dir files, broken and invalid plugins."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clm_hub.connectors.base import Capability
from clm_hub.errors import PluginError
from clm_hub.plugins import build_plugin_registry
from tests.support import acme

GOOD_PLUGIN = textwrap.dedent(
    """
    from clm_hub import Connector, ConnectorSettings, hookimpl

    class LocalSettings(ConnectorSettings):
        pass

    class Local(Connector[LocalSettings]):
        name = "local"
        settings_model = LocalSettings
        default_base_url = "http://localhost"

    @hookimpl
    def register_connectors(register):
        register(Local)
    """
)


def make_distribution(root: Path, name: str, module_source: str) -> None:
    """Install a real (if tiny) distribution on sys.path with a clm_hub entry point."""
    (root / f"{name}.py").write_text(module_source, encoding="utf-8")
    dist = root / f"{name}-0.9.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.9\n")
    (dist / "entry_points.txt").write_text(f"[clm_hub]\n{name} = {name}\n")


def test_connector_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(tmp_path, "clm_hub_epdemo", GOOD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_plugin_registry()
    info = registry.connectors["local"]
    assert info.plugin == "clm_hub_epdemo"
    assert info.origin == "package clm_hub_epdemo 0.9"
    assert registry.failures == []


def test_connector_from_plugins_dir(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(GOOD_PLUGIN, encoding="utf-8")
    registry = build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False)
    assert registry.connectors["local"].origin == f"file {tmp_path / 'mine.py'}"


def test_broken_plugin_is_reported_by_name_and_others_still_load(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n", encoding="utf-8")
    (tmp_path / "mine.py").write_text(GOOD_PLUGIN, encoding="utf-8")
    registry = build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False)
    assert "local" in registry.connectors
    [failure] = registry.failures
    assert failure.name == "broken"
    assert "does_not_exist_anywhere" in failure.error


def test_broken_entry_point_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(tmp_path, "clm_hub_broken", "raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_plugin_registry()
    assert any(
        f.name == "clm_hub_broken" and "boom at import" in f.error for f in registry.failures
    )


def test_misspelled_hook_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(
        "from clm_hub import hookimpl\n\n@hookimpl\ndef register_conectors(register):\n    pass\n"
    )
    with pytest.raises(Exception, match="register_conectors"):
        build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False)


def test_registering_a_non_connector_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "from clm_hub import hookimpl\n\n@hookimpl\ndef register_connectors(register):\n"
        "    register(dict)\n"
    )
    registry = build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False)
    [failure] = registry.failures
    assert "not a Connector class" in failure.error


def test_claimed_capability_without_its_method_is_reported(tmp_path: Path) -> None:
    source = GOOD_PLUGIN.replace(
        'default_base_url = "http://localhost"',
        'default_base_url = "http://localhost"\n    capabilities = frozenset({"orders"})',
    )
    (tmp_path / "liar.py").write_text(source)
    registry = build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False)
    [failure] = registry.failures
    assert "claims 'orders' but does not implement pull_orders()" in failure.error


def test_duplicate_connector_names_name_both_plugins(tmp_path: Path) -> None:
    (tmp_path / "first.py").write_text(GOOD_PLUGIN)
    (tmp_path / "second.py").write_text(GOOD_PLUGIN)
    registry = build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False)
    [failure] = registry.failures
    assert "'first'" in failure.error
    assert "'second'" in failure.error


def test_unknown_connector_lookup_lists_the_known_ones() -> None:
    registry = build_plugin_registry(entry_points=False, extra={"acme": acme})
    assert registry.connector("acme") is acme.Acme
    assert registry.connectors["acme"].connector.capabilities == {
        Capability.CONTACTS,
        Capability.TAG_PUSH,
    }
    with pytest.raises(PluginError, match=r"no connector named 'shopfy' \(known: acme\)"):
        registry.connector("shopfy")


def test_disabled_plugins_are_not_loaded(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(GOOD_PLUGIN)
    registry = build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False, disabled=["mine"])
    assert registry.connectors == {}


def test_each_registry_is_independent(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(GOOD_PLUGIN)
    first = build_plugin_registry(plugins_dirs=[tmp_path], entry_points=False)
    second = build_plugin_registry(entry_points=False)
    assert "local" in first.connectors
    assert second.connectors == {}
