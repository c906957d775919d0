"""The connector contract: one base class, one settings model, a few async methods.

A connector turns one tool's API into typed records (pages in) and applies tag/field
changes (a batch out, one outcome per record). The hub constructs it with validated
settings and a ready ``HttpClient``; a connector never reads the environment, builds its
own client or touches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from clm_hub.connectors.http import HttpClient, HttpOptions
from clm_hub.records import (
    ContactRecord,
    OrderRecord,
    Page,
    PushChange,
    PushOutcome,
    StreamCursor,
    SurveyResponseRecord,
)

__all__ = [
    "Capability",
    "Connector",
    "ConnectorSettings",
    "RegisterConnector",
    "WebhookEvent",
    "WebhookRequest",
]


class ConnectorSettings(BaseModel):
    """Base of every connector's settings model.

    Unknown keys are errors. Every ``SecretStr`` field ``x`` may instead be given as
    ``x_file``, a path whose content (trailing newline dropped) is the secret, for
    container secrets and vault agents.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = None
    """Point the connector at a simulator or a proxy instead of the tool's own host."""

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            key = f"{name}_file"
            if key not in out:
                continue
            if field.annotation not in (SecretStr, SecretStr | None):
                continue
            path = Path(str(out.pop(key))).expanduser()
            try:
                out[name] = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"{key}: cannot read {path}: {exc.strerror}") from None
        return out


SettingsT = TypeVar("SettingsT", bound=ConnectorSettings)


class Capability(StrEnum):
    """What a connector can do; the hub only calls what is declared."""

    CONTACTS = "contacts"
    ORDERS = "orders"
    SURVEY_RESPONSES = "survey_responses"
    TAG_PUSH = "tag_push"
    FIELD_PUSH = "field_push"
    WEBHOOKS = "webhooks"
    ERASE = "erase"


# Capability -> the method a connector must define to claim it.
CAPABILITY_METHODS: Mapping[Capability, str] = {
    Capability.CONTACTS: "pull_contacts",
    Capability.ORDERS: "pull_orders",
    Capability.SURVEY_RESPONSES: "pull_survey_responses",
    Capability.TAG_PUSH: "push",
    Capability.FIELD_PUSH: "push",
    Capability.WEBHOOKS: "parse_webhook",
    Capability.ERASE: "erase",
}


class WebhookRequest(BaseModel):
    """A webhook delivery as received, before any verification."""

    model_config = ConfigDict(frozen=True)

    method: str
    url: str
    """The full URL the tool called (some signatures cover it, e.g. HubSpot v3)."""
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes
    received_at: datetime


class WebhookEvent(BaseModel):
    """A verified webhook delivery, already parsed into records."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    """The tool's delivery id, used to drop duplicate deliveries."""
    contacts: Sequence[ContactRecord] = ()
    orders: Sequence[OrderRecord] = ()
    survey_responses: Sequence[SurveyResponseRecord] = ()
    erase_external_ids: Sequence[str] = ()


class Connector(Generic[SettingsT]):
    """Base class of every connector. Subclasses set the class attributes and the methods
    matching their declared ``capabilities``."""

    name: ClassVar[str]
    """Unique id of the connector type, as written in ``plugin = "..."`` in the config."""
    version: ClassVar[str] = "0.0.0"
    settings_model: ClassVar[type[ConnectorSettings]]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    default_base_url: ClassVar[str]
    cursor_version: ClassVar[int] = 1
    """Bump when the meaning of stored cursors changes, and implement ``migrate_cursor``."""
    max_push_batch: ClassVar[int] = 100
    """The largest batch ``push`` accepts in one call (the API's documented limit)."""
    reports_tags: ClassVar[bool] = False
    """``pull_contacts`` returns each record's full tag list. With ``TAG_PUSH``, the hub then
    notices owned tags changed by hand in the tool and puts back what it wants."""

    def __init__(
        self, settings: SettingsT, http: HttpClient, *, connector_id: str | None = None
    ) -> None:
        self.settings = settings
        self.http = http
        self.connector_id = connector_id or self.name
        self.log = structlog.get_logger(f"clm_hub.connector.{self.name}").bind(
            connector=self.connector_id
        )

    @classmethod
    def http_options(cls, settings: SettingsT) -> HttpOptions:
        """Base URL, auth headers and rate-limit model for the client the hub will build."""
        return HttpOptions(base_url=settings.base_url or cls.default_base_url)

    async def check(self) -> None:
        """Make one cheap authenticated call; raise ``AuthError`` if credentials are refused."""
        return None

    def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        """Yield pages of contacts changed since ``since`` (everything when ``None``)."""
        raise NotImplementedError(f"{self.name} does not pull contacts")

    def pull_orders(self, since: StreamCursor | None) -> AsyncIterator[Page[OrderRecord]]:
        """Yield pages of orders changed since ``since`` (everything when ``None``)."""
        raise NotImplementedError(f"{self.name} does not pull orders")

    def pull_survey_responses(
        self, since: StreamCursor | None
    ) -> AsyncIterator[Page[SurveyResponseRecord]]:
        """Yield pages of survey answers given since ``since`` (everything when ``None``)."""
        raise NotImplementedError(f"{self.name} does not pull survey responses")

    async def prepare_push(self, field_values: Mapping[str, Sequence[str]]) -> None:
        """Make sure the owned fields exist and accept these values (e.g. create an
        enumeration property, add missing options). Called before a cycle's first push to
        fields; must be idempotent. Raise ``RequestRejected`` saying what to create by
        hand when the API does not allow it."""
        return None

    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        """Apply up to ``max_push_batch`` changes; return one outcome per change."""
        raise NotImplementedError(f"{self.name} does not push")

    def migrate_cursor(
        self, stream: str, version: int, cursor: StreamCursor
    ) -> StreamCursor | None:
        """Turn a cursor stored by an older version into the current form (``None``: re-read)."""
        return None

    async def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        """Verify a delivery's signature (and freshness) and turn it into records.

        Raise ``AuthError`` for a forged, stale or replayed delivery. A tool whose webhooks
        carry only ids may fetch the full records through ``self.http``.
        """
        raise NotImplementedError(f"{self.name} does not take webhooks")

    async def erase(self, external_ids: Sequence[str]) -> Sequence[PushOutcome]:
        """Erase people's personal data in the tool, where its API allows it."""
        raise NotImplementedError(f"{self.name} cannot erase")


class RegisterConnector(Protocol):
    """The callback ``register_connectors`` hands to plugins."""

    def __call__(self, connector: type[Connector[Any]], /) -> None: ...
