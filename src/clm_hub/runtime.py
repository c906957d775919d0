"""Turning settings and loaded plugins into ready connectors.

The one place that knows how a ``[connectors.<id>]`` table, a plugin's connector class,
its settings model and an HTTP client fit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from clm_hub.connectors.base import Connector, ConnectorSettings
from clm_hub.connectors.http import build_http_client
from clm_hub.connectors.ratelimit import Clock
from clm_hub.errors import ConfigError, PluginError
from clm_hub.plugins import PluginRegistry, build_plugin_registry
from clm_hub.redaction import Redactor, secrets_in
from clm_hub.settings import HubSettings

__all__ = [
    "ConfiguredConnector",
    "build_redactor",
    "configure_connectors",
    "load_registry",
    "open_connector",
]


@dataclass(frozen=True)
class ConfiguredConnector:
    """A connector table resolved against its plugin, or the reason it could not be."""

    connector_id: str
    plugin: str
    enabled: bool
    connector: type[Connector[Any]] | None = None
    settings: ConnectorSettings | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def load_registry(settings: HubSettings) -> PluginRegistry:
    """Load the plugins the settings ask for (entry points plus ``plugins_dir``)."""
    return build_plugin_registry(
        plugins_dirs=settings.plugins_dir, disabled=settings.disabled_plugins
    )


def configure_connectors(
    settings: HubSettings, registry: PluginRegistry
) -> list[ConfiguredConnector]:
    """Validate every connector table; problems are collected, not raised, so all show."""
    out: list[ConfiguredConnector] = []
    for connector_id, config in sorted(settings.connectors.items()):
        try:
            cls = registry.connector(config.plugin)
            connector_settings = settings.connector_settings(connector_id, cls.settings_model)
        except (PluginError, ConfigError) as exc:
            out.append(
                ConfiguredConnector(connector_id, config.plugin, config.enabled, error=str(exc))
            )
            continue
        out.append(
            ConfiguredConnector(
                connector_id, config.plugin, config.enabled, cls, connector_settings
            )
        )
    return out


def build_redactor(configured: list[ConfiguredConnector]) -> Redactor:
    """A redactor knowing every secret of every configured connector."""
    redactor = Redactor()
    for item in configured:
        if item.settings is not None:
            redactor.add(secrets_in(item.settings))
    return redactor


def open_connector(
    item: ConfiguredConnector,
    redactor: Redactor,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> Connector[Any]:
    """Instantiate a configured connector with its own HTTP client."""
    if item.connector is None or item.settings is None:
        raise ConfigError(item.error or f"connector {item.connector_id!r} is not configured")
    options = item.connector.http_options(item.settings)
    http = build_http_client(
        connector=item.connector_id,
        options=options,
        redactor=redactor,
        transport=transport,
        clock=clock,
    )
    return item.connector(item.settings, http, connector_id=item.connector_id)
