"""Hub settings: one TOML file, overridable from the environment.

Precedence, highest first: ``CLM_HUB_*`` environment variables (nested keys joined by
``__``, e.g. ``CLM_HUB_CONNECTORS__SHOP__ACCESS_TOKEN``), the TOML file, the defaults.
Connector tables are validated in two steps: the common keys here, then the rest against
the settings model of the connector's plugin, once plugins are loaded. Every error names
the key and the file it came from.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from clm_hub.connectors.base import ConnectorSettings
from clm_hub.errors import ConfigError
from clm_hub.identity import IdentityRules
from clm_hub.push.mapping import PushMapping
from clm_hub.scheduler import DaemonSettings, Duration, Reconcile, Schedule

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ConnectorConfig",
    "HubSettings",
    "Reconcile",
    "Schedule",
    "SyncOptions",
    "format_validation_error",
    "load_settings",
]

DEFAULT_DATABASE_URL = "sqlite:///clm-hub.sqlite3"


class SyncOptions(BaseModel):
    """The ``[sync]`` table: how pulls resume and how much they buffer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cursor_overlap: Duration = timedelta(minutes=5)
    """Resume this far before the stored ``updated_since``, so records that share the
    boundary timestamp (or land late in the tool's index) are never missed; re-read
    records that did not change cost no writes."""
    prefetch_pages: Annotated[int, Field(ge=1, le=16)] = 2
    """Pages fetched ahead while the previous one is written; bounds memory."""
    pull_workers: bool = True
    """Run each connector's pulls (HTTP, parsing, preparing pages) in a worker process of
    its own, so that they use another core than the writes. Off: everything in the hub's
    process (slower on large pulls, one process to debug)."""


class ConnectorConfig(BaseModel):
    """A ``[connectors.<id>]`` table: the common keys; the rest belong to the plugin."""

    model_config = ConfigDict(extra="allow", frozen=True)

    plugin: str
    enabled: bool = True
    schedule: Schedule = Schedule()
    push: PushMapping = PushMapping()
    """What the hub writes back to this tool (tags and/or fields) and how carefully."""
    reconcile: Reconcile = Reconcile()
    """The daemon's periodic sweep over a longer window (see ``Reconcile``)."""

    @property
    def plugin_settings(self) -> dict[str, Any]:
        """The keys meant for the plugin's own settings model (``base_url`` included)."""
        return dict(self.model_extra or {})


_CONNECTOR_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class HubSettings(BaseSettings):
    """Everything the hub reads from its config file and environment."""

    model_config = SettingsConfigDict(
        env_prefix="CLM_HUB_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database_url: str = DEFAULT_DATABASE_URL
    tag_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,15}$")] = "clm"
    plugins_dir: list[Path] = Field(default_factory=list)
    disabled_plugins: list[str] = Field(default_factory=list)
    default_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    """Region for phone numbers written without a country code (ISO 3166 alpha-2)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8787
    stage_rules: Path | None = None
    """Stage rules TOML (relative to this file); default: the built-in rules."""
    identity: IdentityRules = IdentityRules()
    sync: SyncOptions = SyncOptions()
    daemon: DaemonSettings = DaemonSettings()
    connectors: dict[str, ConnectorConfig] = Field(default_factory=dict)

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("connectors")
    @classmethod
    def _check_ids(cls, value: dict[str, ConnectorConfig]) -> dict[str, ConnectorConfig]:
        for connector_id in value:
            if not _CONNECTOR_ID.match(connector_id):
                raise ValueError(
                    f"connector id {connector_id!r} must be lower-case letters, digits and _ "
                    "(it is also the env-var key)"
                )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)

    @property
    def source(self) -> str:
        """Where the settings came from, for error messages."""
        return str(self._source) if self._source else "defaults and CLM_HUB_* environment"

    def connector_settings(
        self, connector_id: str, model: type[ConnectorSettings]
    ) -> ConnectorSettings:
        """Validate one connector table against its plugin's settings model."""
        config = self.connectors[connector_id]
        data = config.plugin_settings
        if self._source is not None:
            for key, value in list(data.items()):
                if (
                    key.endswith("_file")
                    and isinstance(value, str)
                    and not Path(value).is_absolute()
                ):
                    data[key] = str(self._source.parent / value)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, self.source, prefix=f"connectors.{connector_id}")
            ) from None


def format_validation_error(exc: ValidationError, source: str, *, prefix: str = "") -> str:
    """One line per problem, each naming the key and the file."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {key or '(top level)'}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(path: Path | str | None) -> HubSettings:
    """Read settings from ``path`` (TOML) and the environment; ``None`` means defaults only."""
    data: dict[str, Any] = {}
    source: Path | None = None
    if path is not None:
        source = Path(path).expanduser().resolve()
        try:
            with source.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        data = _resolve_paths(data, source.parent)
    try:
        settings = HubSettings(**data)
    except ValidationError as exc:
        where = str(source) if source else "CLM_HUB_* environment"
        raise ConfigError(format_validation_error(exc, where)) from None
    settings._source = source
    return settings


def _resolve_paths(data: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Relative ``plugins_dir`` and ``stage_rules`` mean relative to the config file."""
    out = dict(data)
    rules = out.get("stage_rules")
    if isinstance(rules, str) and not Path(rules).is_absolute():
        out["stage_rules"] = str(base / rules)
    dirs = out.get("plugins_dir")
    if isinstance(dirs, str):
        dirs = [dirs]
    if isinstance(dirs, list):
        out["plugins_dir"] = [
            str(base / d) if isinstance(d, str) and not Path(d).is_absolute() else d for d in dirs
        ]
    return out
