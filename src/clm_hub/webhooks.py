"""Webhook deliveries: verify through the plugin, drop duplicates, ingest, follow up.

A delivery goes through these steps, and stops at the first that says no:

1. the connector id is configured, enabled and its plugin takes webhooks (else 404);
2. the plugin's ``parse_webhook`` verifies the signature and freshness (``AuthError``: 401,
   nothing stored) and turns the body into records;
3. an event id already delivered is acknowledged (200) and changes nothing;
4. the records are written by the same ``PageWriter`` as pulls, with no cursor, so the
   stream's stored cursor does not move; people the tool asks to erase are forgotten;
5. the event id is remembered, and the customers it changed are handed on (the daemon
   debounces a follow-up cycle that brings their stage and tags up to date).

Storing the event id after the records makes a crash in between harmless: the tool
retries, and re-ingesting the same records changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import structlog
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from clm_hub.connectors.base import Capability, Connector, WebhookEvent, WebhookRequest
from clm_hub.erasure import erase_person
from clm_hub.errors import AuthError, ConfigError, ConnectorError, MalformedResponse
from clm_hub.ingest import PageWriter, Stream
from clm_hub.linking import IdentityContext, customer_t, identity_t
from clm_hub.plugins import PluginRegistry
from clm_hub.records import Page, now_utc
from clm_hub.redaction import Redactor
from clm_hub.runtime import ConfiguredConnector, configure_connectors, open_connector
from clm_hub.settings import HubSettings
from clm_hub.store.tables import WebhookDelivery

__all__ = [
    "Debouncer",
    "WebhookOutcome",
    "WebhookReceiver",
    "WebhookReply",
    "prune_deliveries",
]

log = structlog.get_logger("clm_hub.webhooks")
delivery_t = WebhookDelivery.__table__  # type: ignore[attr-defined]


class WebhookOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNAUTHORIZED = "unauthorized"
    MALFORMED = "malformed"
    UNKNOWN_CONNECTOR = "unknown_connector"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


STATUS_CODES = {
    WebhookOutcome.ACCEPTED: 200,
    WebhookOutcome.DUPLICATE: 200,
    WebhookOutcome.UNAUTHORIZED: 401,
    WebhookOutcome.MALFORMED: 400,
    WebhookOutcome.UNKNOWN_CONNECTOR: 404,
    WebhookOutcome.UNAVAILABLE: 503,
    WebhookOutcome.ERROR: 500,
}


@dataclass(frozen=True)
class WebhookReply:
    """What the receiver answers the tool (the message never echoes secrets or payloads)."""

    outcome: WebhookOutcome
    message: str
    event_id: str | None = None
    customers: int = 0

    @property
    def status_code(self) -> int:
        return STATUS_CODES[self.outcome]

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"status": self.outcome.value, "message": self.message}
        if self.event_id is not None:
            out["event_id"] = self.event_id
        return out


@dataclass
class _Ingested:
    dirty: set[int] = field(default_factory=set)
    records: int = 0
    erased: int = 0


class WebhookReceiver:
    """Turns verified deliveries into store writes, exactly once per event id."""

    def __init__(
        self,
        settings: HubSettings,
        registry: PluginRegistry,
        engine: Engine,
        writer: PageWriter,
        *,
        redactor: Redactor,
        on_ingested: Callable[[str, set[int]], None],
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = now_utc,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.writer = writer
        self.redactor = redactor
        self.on_ingested = on_ingested
        self.transport = transport
        self.now = now
        self._configured = {c.connector_id: c for c in configure_connectors(settings, registry)}
        self._open: dict[str, Connector[Any]] = {}

    def accepts(self, connector_id: str) -> ConfiguredConnector | None:
        """The connector behind ``/webhooks/<connector_id>``, if it takes webhooks."""
        item = self._configured.get(connector_id)
        if item is None or not item.enabled or item.connector is None:
            return None
        return item if Capability.WEBHOOKS in item.connector.capabilities else None

    async def receive(self, connector_id: str, request: WebhookRequest) -> WebhookReply:
        """Handle one delivery end to end; never raises for anything the tool sent."""
        item = self.accepts(connector_id)
        if item is None:
            return WebhookReply(
                WebhookOutcome.UNKNOWN_CONNECTOR,
                f"no enabled connector {connector_id!r} takes webhooks",
            )
        connector = self._connector(item)
        try:
            event = await connector.parse_webhook(request)
        except AuthError as exc:
            log.warning("webhook.unauthorized", connector=connector_id, reason=self._text(exc))
            return WebhookReply(WebhookOutcome.UNAUTHORIZED, "signature verification failed")
        except MalformedResponse as exc:
            log.warning("webhook.malformed", connector=connector_id, reason=self._text(exc))
            return WebhookReply(WebhookOutcome.MALFORMED, "the body does not parse")
        except ConfigError as exc:
            log.error("webhook.misconfigured", connector=connector_id, reason=self._text(exc))
            return WebhookReply(WebhookOutcome.ERROR, "webhooks are not configured for it")
        except ConnectorError as exc:  # e.g. fetching the full record failed: let it retry
            log.warning("webhook.unavailable", connector=connector_id, reason=self._text(exc))
            return WebhookReply(WebhookOutcome.UNAVAILABLE, "try again later")
        # A tool without delivery ids: the same body is the same event.
        event_id = event.event_id or "sha256:" + hashlib.sha256(request.body).hexdigest()
        with structlog.contextvars.bound_contextvars(event_id=event_id):
            if await asyncio.to_thread(self._seen, connector_id, event_id):
                log.info("webhook.duplicate", connector=connector_id)
                return WebhookReply(WebhookOutcome.DUPLICATE, "already delivered", event_id)
            ingested = await self._ingest(connector, event)
            fresh = await asyncio.to_thread(self._remember, connector_id, event_id)
            log.info(
                "webhook.ingested", connector=connector_id, records=ingested.records,
                customers=len(ingested.dirty), erased=ingested.erased, first=fresh,
            )  # fmt: skip
            if ingested.dirty or ingested.erased:
                self.on_ingested(connector_id, ingested.dirty)
        return WebhookReply(
            WebhookOutcome.ACCEPTED, "ingested", event_id, customers=len(ingested.dirty)
        )

    async def aclose(self) -> None:
        for connector in self._open.values():
            await connector.http.aclose()
        self._open.clear()

    def _connector(self, item: ConfiguredConnector) -> Connector[Any]:
        connector = self._open.get(item.connector_id)
        if connector is None:
            connector = open_connector(item, self.redactor, transport=self.transport)
            self._open[item.connector_id] = connector
        return connector

    def _text(self, exc: BaseException) -> str:
        return self.redactor.text(f"{type(exc).__name__}: {exc}")

    def _seen(self, connector_id: str, event_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(delivery_t.c.event_id).where(
                    delivery_t.c.connector == connector_id, delivery_t.c.event_id == event_id
                )
            ).first()
        return found is not None

    def _remember(self, connector_id: str, event_id: str) -> bool:
        """Store the event id; ``False`` when a concurrent delivery of it got there first."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(delivery_t).values(
                        connector=connector_id, event_id=event_id, received_at=self.now()
                    )
                )
        except IntegrityError:
            return False
        return True

    async def _ingest(self, connector: Connector[Any], event: WebhookEvent) -> _Ingested:
        source = connector.connector_id
        settings = self.settings

        def context(now: datetime) -> IdentityContext:
            return IdentityContext(
                source, settings.identity, settings.default_region, now, settings.tag_prefix
            )

        out = _Ingested()
        run_id = str(uuid.uuid4())
        streams: tuple[tuple[Stream, Any], ...] = (
            ("contacts", event.contacts),
            ("orders", event.orders),
            ("survey_responses", event.survey_responses),
        )
        for stream, records in streams:
            if not records:
                continue
            counts = await asyncio.to_thread(
                self.writer.write, context, stream, Page(records=list(records)),
                run_row_id=None, run_id=run_id, cursor_version=connector.cursor_version,
            )  # fmt: skip
            out.records += len(records)
            out.dirty |= counts.dirty_customers
        if event.erase_external_ids:
            out.erased = await asyncio.to_thread(self._erase, source, event.erase_external_ids)
        return out

    def _erase(self, source: str, external_ids: Sequence[str]) -> int:
        """Forget the people behind these tool records (found by their email)."""
        with self.engine.connect() as conn:
            emails = set(
                conn.execute(
                    select(customer_t.c.email)
                    .join(identity_t, identity_t.c.customer_id == customer_t.c.id)
                    .where(
                        identity_t.c.source == source,
                        identity_t.c.external_id.in_(list(external_ids)),
                        customer_t.c.email.is_not(None),
                    )
                ).scalars()
            )
        erased = 0
        for email in sorted(emails):
            erased += len(erase_person(self.engine, email, now=self.now()).customer_ids)
        if len(emails) < len(external_ids):
            log.warning(
                "webhook.erase_unresolved", connector=source,
                unresolved=len(external_ids) - len(emails),
                action="erase them with `clm-hub customers forget EMAIL`",
            )  # fmt: skip
        return erased


def prune_deliveries(engine: Engine, *, older_than: datetime) -> int:
    """Forget event ids delivered before ``older_than``; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(delete(delivery_t).where(delivery_t.c.received_at < older_than))
    return result.rowcount


class Debouncer:
    """Runs ``action(key)`` once things calm down: ``delay`` after the last ``poke(key)``,
    but no later than ``max_wait`` after the first poke of a burst."""

    def __init__(
        self,
        action: Callable[[str], Awaitable[None]],
        *,
        delay: timedelta,
        max_wait: timedelta,
    ) -> None:
        self._action = action
        self._delay = delay.total_seconds()
        self._max_wait = max(max_wait.total_seconds(), self._delay)
        self._timers: dict[str, tuple[float, asyncio.Task[None]]] = {}

    def poke(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        first, timer = self._timers.get(key, (now, None))
        if timer is not None:
            timer.cancel()
        wait = min(self._delay, first + self._max_wait - now)
        task = asyncio.create_task(self._fire(key, max(0.0, wait)), name=f"debounce-{key}")
        self._timers[key] = (first, task)

    async def _fire(self, key: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._timers.pop(key, None)
        try:
            await self._action(key)
        except Exception:  # nobody awaits this task: a failure must at least be seen
            log.exception("webhook.followup_failed", key=key)

    def cancel_all(self) -> int:
        """Drop every pending action (on shutdown); returns how many were pending."""
        pending = len(self._timers)
        for _, task in self._timers.values():
            task.cancel()
        self._timers.clear()
        return pending
