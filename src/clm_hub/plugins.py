"""Finding, loading and checking plugins.

Plugins come from the ``clm_hub`` entry-point group (installed packages, the built-in
connectors included) and from single ``.py`` files in ``plugins_dir`` folders. A plugin
that fails to import is reported by name and skipped; the others still load.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from clm_hub import hookspecs
from clm_hub.connectors.base import CAPABILITY_METHODS, Capability, Connector, ConnectorSettings
from clm_hub.errors import PluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ConnectorInfo",
    "PluginFailure",
    "PluginRegistry",
    "build_plugin_registry",
    "load_plugin_file",
]

ENTRY_POINT_GROUP = "clm_hub"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    origin: str
    error: str


@dataclass(frozen=True)
class ConnectorInfo:
    """A registered connector class and where it came from."""

    connector: type[Connector[Any]]
    plugin: str
    origin: str
    """``package <dist> <version>`` or ``file <path>``."""


@dataclass
class PluginRegistry:
    """The plugin manager plus what it registered and what failed."""

    manager: pluggy.PluginManager
    connectors: dict[str, ConnectorInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def connector(self, name: str) -> type[Connector[Any]]:
        """The connector class registered under ``name``, or a ``PluginError`` saying what is."""
        try:
            return self.connectors[name].connector
        except KeyError:
            known = ", ".join(sorted(self.connectors)) or "none"
            hint = "".join(f"; plugin {f.name!r} failed to load: {f.error}" for f in self.failures)
            raise PluginError(f"no connector named {name!r} (known: {known}){hint}") from None


def _validate_connector(cls: object, plugin: str) -> type[Connector[Any]]:
    if not (inspect.isclass(cls) and issubclass(cls, Connector)):
        raise PluginError(f"plugin {plugin!r} registered {cls!r}, which is not a Connector class")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"plugin {plugin!r}: {cls.__name__}.name must be an identifier")
    model = getattr(cls, "settings_model", None)
    if not (inspect.isclass(model) and issubclass(model, ConnectorSettings)):
        raise PluginError(
            f"plugin {plugin!r}: {cls.__name__}.settings_model must subclass ConnectorSettings"
        )
    if not isinstance(getattr(cls, "default_base_url", None), str):
        raise PluginError(f"plugin {plugin!r}: {cls.__name__}.default_base_url must be set")
    for claimed in cls.capabilities:
        try:
            capability = Capability(claimed)
        except ValueError:
            raise PluginError(
                f"plugin {plugin!r}: {cls.__name__} claims unknown capability {claimed!r}"
            ) from None
        method = CAPABILITY_METHODS[capability]
        if getattr(cls, method) is getattr(Connector, method):
            raise PluginError(
                f"plugin {plugin!r}: {cls.__name__} claims {capability.value!r} "
                f"but does not implement {method}()"
            )
    return cls


def load_plugin_file(path: Path) -> ModuleType:
    """Import a ``plugins_dir`` file (also how a pull worker gets its connector class)."""
    module_name = f"clm_hub_local_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _entry_points(group: str) -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=group)


def build_plugin_registry(
    *,
    plugins_dirs: Iterable[Path] = (),
    entry_points: bool = True,
    extra: Mapping[str, object] | None = None,
    disabled: Iterable[str] = (),
) -> PluginRegistry:
    """Build a fresh plugin manager, load every plugin and collect their connectors.

    :param plugins_dirs: folders whose ``*.py`` files are loaded as plugins.
    :param entry_points: load the ``clm_hub`` entry-point group (off in some tests).
    :param extra: more plugin objects by name (tests, embedding applications).
    :param disabled: plugin names not to load.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = PluginRegistry(manager=manager)
    skip = set(disabled)
    origins: dict[str, str] = {}

    candidates: list[tuple[str, str, Any]] = []  # (name, origin, loader)
    if entry_points:
        for ep in _entry_points(ENTRY_POINT_GROUP):
            dist = ep.dist
            origin = f"package {dist.name} {dist.version}" if dist else f"package {ep.value}"
            candidates.append((ep.name, origin, ep.load))
    for folder in map(Path, plugins_dirs):
        if not folder.is_dir():
            registry.failures.append(
                PluginFailure(str(folder), f"dir {folder}", "plugins_dir does not exist")
            )
            continue
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            candidates.append((path.stem, f"file {path}", lambda p=path: load_plugin_file(p)))
    for name, plugin in (extra or {}).items():
        candidates.append((name, "object", lambda p=plugin: p))

    for name, origin, load in candidates:
        if name in skip:
            continue
        if name in origins:
            registry.failures.append(
                PluginFailure(
                    name, origin, f"a plugin named {name!r} is already loaded from {origins[name]}"
                )
            )
            continue
        try:
            plugin = load()
            manager.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not take the others down
            registry.failures.append(PluginFailure(name, origin, f"{type(exc).__name__}: {exc}"))
            continue
        origins[name] = origin

    manager.check_pending()
    _collect_connectors(registry, origins)
    return registry


def _collect_connectors(registry: PluginRegistry, origins: Mapping[str, str]) -> None:
    for impl in registry.manager.hook.register_connectors.get_hookimpls():
        plugin_name = impl.plugin_name

        def register(cls: type[Connector[Any]], /, _plugin: str = plugin_name) -> None:
            checked = _validate_connector(cls, _plugin)
            existing = registry.connectors.get(checked.name)
            if existing is not None:
                raise PluginError(
                    f"connector name {checked.name!r} is registered by both plugin "
                    f"{existing.plugin!r} and plugin {_plugin!r}"
                )
            registry.connectors[checked.name] = ConnectorInfo(
                connector=checked, plugin=_plugin, origin=origins.get(_plugin, "object")
            )

        try:
            impl.function(register=register)
        except PluginError as exc:
            registry.failures.append(
                PluginFailure(plugin_name, origins.get(plugin_name, "object"), str(exc))
            )
