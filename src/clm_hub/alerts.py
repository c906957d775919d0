"""Alerts: what went wrong, for which connector, and what to do about it.

The daemon raises an ``Alert`` on a failed or partial cycle, a spike of rejected records, an
exhausted API budget and a connector whose last cycle is too old. ``Alerter`` decides (and
rate-limits: the same kind for the same connector at most once per ``repeat_after``) and
hands each alert to every ``AlertSink``: always the log, then every sink plugins offer
through the ``register_alert_sinks`` hook. The built-in Slack-compatible incoming webhook
(``[daemon.alerts] webhook_url``) is one of those, implemented in this module with the same
hook. Embedding applications may also pass sinks (anything with ``async send(alert)``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import httpx
import pluggy
import structlog

from clm_hub.errors import PluginError
from clm_hub.hookspecs import hookimpl
from clm_hub.records import now_utc
from clm_hub.redaction import Redactor
from clm_hub.runs import RunStatus
from clm_hub.scheduler import AlertSettings
from clm_hub.sync import ConnectorResult

if TYPE_CHECKING:
    from clm_hub.settings import HubSettings

__all__ = [
    "Alert",
    "AlertKind",
    "AlertSink",
    "Alerter",
    "LogSink",
    "RegisterAlertSink",
    "SlackWebhookSink",
    "alerts_for_cycle",
    "close_sinks",
    "collect_alert_sinks",
    "crash_alert",
    "stale_alert",
]

log = structlog.get_logger("clm_hub.alerts")


class AlertKind(StrEnum):
    CYCLE_FAILED = "cycle_failed"
    CYCLE_PARTIAL = "cycle_partial"
    REJECTED_SPIKE = "rejected_spike"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CONNECTOR_STALE = "connector_stale"


CYCLE_KINDS = frozenset(
    {
        AlertKind.CYCLE_FAILED,
        AlertKind.CYCLE_PARTIAL,
        AlertKind.REJECTED_SPIKE,
        AlertKind.BUDGET_EXHAUSTED,
    }
)
"""The kinds a cycle's outcome raises (and resolves)."""


@dataclass(frozen=True)
class Alert:
    """One thing an operator should know, with the action that fixes it."""

    kind: AlertKind
    connector: str
    summary: str
    action: str
    at: datetime
    details: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return "warning" if self.kind is AlertKind.CYCLE_PARTIAL else "error"

    def text(self) -> str:
        """The alert as one message a person reads in chat."""
        return f"[clm-hub] {self.connector}: {self.summary}\nWhat to do: {self.action}"


class AlertSink(Protocol):
    """Where alerts go. ``send`` should log a delivery failure rather than raise."""

    async def send(self, alert: Alert) -> None: ...


class RegisterAlertSink(Protocol):
    """The callback ``register_alert_sinks`` implementations call once per sink."""

    def __call__(self, sink: AlertSink, /) -> None: ...


class LogSink:
    """Every alert as a structured log line (event ``alert``)."""

    async def send(self, alert: Alert) -> None:
        log.warning(
            "alert", kind=alert.kind.value, connector=alert.connector, summary=alert.summary,
            action=alert.action, **alert.details,
        )  # fmt: skip


class SlackWebhookSink:
    """POSTs Slack-compatible JSON (``text`` plus ``blocks``) to an incoming-webhook URL;
    Mattermost, Rocket.Chat, Teams workflows and most chat tools accept the same body."""

    def __init__(
        self,
        url: str,
        *,
        redactor: Redactor,
        timeout: timedelta = timedelta(seconds=10),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._redactor = redactor
        self._client = httpx.AsyncClient(timeout=timeout.total_seconds(), transport=transport)

    @staticmethod
    def payload(alert: Alert) -> dict[str, object]:
        """The JSON body for one alert."""
        facts = "  ".join(f"*{k}:* {v}" for k, v in alert.details.items())
        headline = f":rotating_light: *clm-hub {alert.kind.value}* — `{alert.connector}`"
        blocks: list[dict[str, object]] = [
            _section(f"{headline}\n{alert.summary}"),
            _section(f"*What to do:* {alert.action}"),
        ]
        if facts:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]})
        return {"text": alert.text(), "blocks": blocks}

    async def send(self, alert: Alert) -> None:
        try:
            response = await self._client.post(self._url, json=self.payload(alert))
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning(
                "alert.send_failed", kind=alert.kind.value, connector=alert.connector,
                error=self._redactor.text(f"{type(exc).__name__}: {exc}"),
            )  # fmt: skip

    async def aclose(self) -> None:
        await self._client.aclose()


def _section(markdown: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown}}


class SlackWebhookPlugin:
    """The built-in alert plugin: a ``SlackWebhookSink`` when ``webhook_url`` is set."""

    @staticmethod
    @hookimpl
    def register_alert_sinks(
        register: RegisterAlertSink, settings: HubSettings, redactor: Redactor
    ) -> None:
        alerts = settings.daemon.alerts
        if alerts.webhook_url is not None:
            url = alerts.webhook_url.get_secret_value()
            register(SlackWebhookSink(url, redactor=redactor, timeout=alerts.timeout))


BUILTIN_PLUGINS: tuple[tuple[str, object], ...] = (
    ("clm_hub.alerts.slack_webhook", SlackWebhookPlugin()),
)
"""Alert plugins every daemon has, registered next to the installed ones."""


def collect_alert_sinks(
    manager: pluggy.PluginManager, settings: HubSettings, redactor: Redactor
) -> list[AlertSink]:
    """Every sink the built-in and installed plugins offer, in registration order.

    A plugin that registers something without an async ``send`` is refused with a
    ``PluginError`` naming it: a sink that cannot deliver would fail silently later.
    """
    for name, plugin in BUILTIN_PLUGINS:
        if manager.get_plugin(name) is None:
            manager.register(plugin, name=name)
    sinks: list[AlertSink] = []
    # pluggy calls the most recently registered first; the built-ins go first here
    for impl in reversed(manager.hook.register_alert_sinks.get_hookimpls()):
        plugin_name = impl.plugin_name

        def register(sink: AlertSink, /, _plugin: str = plugin_name) -> None:
            if not inspect.iscoroutinefunction(getattr(sink, "send", None)):
                raise PluginError(
                    f"plugin {_plugin!r} registered {sink!r} as an alert sink, but it has no "
                    "`async def send(self, alert)`"
                )
            sinks.append(sink)

        arguments = {"register": register, "settings": settings, "redactor": redactor}
        try:
            impl.function(**{name: arguments[name] for name in impl.argnames})
        except PluginError:
            raise
        except Exception as exc:  # the daemon must not start without the sinks it was given
            raise PluginError(
                f"plugin {plugin_name!r} failed to register its alert sinks: "
                f"{type(exc).__name__}: {redactor.text(str(exc))}"
            ) from exc
    return sinks


async def close_sinks(sinks: Sequence[AlertSink]) -> None:
    """Close the sinks that hold resources (HTTP clients), at shutdown."""
    for sink in sinks:
        close = getattr(sink, "aclose", None)
        if close is not None and inspect.iscoroutinefunction(close):
            try:
                await close()
            except Exception as exc:  # shutting down: a sink that fails to close is logged
                log.warning("alert.sink_close_failed", sink=type(sink).__name__, error=str(exc))


def alerts_for_cycle(
    result: ConnectorResult, settings: AlertSettings, *, now: datetime
) -> list[Alert]:
    """The alerts one finished connector cycle calls for (possibly none)."""
    connector = result.connector
    alerts: list[Alert] = []
    errors = [result.error or ""] + [s.error or "" for s in result.streams]
    if result.push is not None:
        errors.append(result.push.error or "")
    if any(e.startswith("BudgetExhausted") for e in errors):
        alerts.append(Alert(
            AlertKind.BUDGET_EXHAUSTED, connector,
            "the tool's API budget (daily allowance) is spent; pulls and pushes wait for it "
            "to reset",
            "nothing to do for it to recover: the next cycle after the reset catches up. If "
            "it keeps happening, run this connector less often (its schedule) or raise the "
            "API allowance with the vendor.",
            now,
        ))  # fmt: skip
    if result.status is RunStatus.FAILED:
        alerts.append(Alert(
            AlertKind.CYCLE_FAILED, connector,
            f"the cycle failed: {result.reason or 'unknown error'}",
            "read the error: a credentials problem (401/403) needs a new token in the "
            "config or environment (check with `clm-hub check`); an outage resolves itself "
            "and the next cycle resumes from the stored cursor. `clm-hub status` shows the "
            "last runs.",
            now,
        ))  # fmt: skip
    elif result.status is RunStatus.PARTIAL:
        rejected = sum(s.counts.rejected for s in result.streams)
        failed = result.push.counts.failed if result.push is not None else 0
        held = result.push is not None and result.push.held
        alerts.append(Alert(
            AlertKind.CYCLE_PARTIAL, connector,
            f"the cycle finished partially: {rejected} record(s) rejected, {failed} push(es) "
            f"failed{', push held by the safety valve' if held else ''}",
            "see `clm-hub status` for the rejected records and push errors; failed pushes are "
            "retried with backoff. A held push needs `clm-hub sync --apply-large` once you "
            "have checked the plan (`clm-hub sync --dry-run`).",
            now, {"rejected": rejected, "push_failed": failed},
        ))  # fmt: skip
    read = sum(s.counts.read for s in result.streams)
    rejected = sum(s.counts.rejected for s in result.streams)
    if rejected >= settings.rejected_min and rejected >= settings.rejected_share * read:
        alerts.append(Alert(
            AlertKind.REJECTED_SPIKE, connector,
            f"{rejected} of {read} records were rejected in one cycle",
            "the tool's data may have changed shape (a new field format, a broken export): "
            "look at the reasons in `clm-hub status`, fix the data in the tool or report the "
            "connector bug; rejected records are re-read once they change.",
            now, {"rejected": rejected, "read": read},
        ))  # fmt: skip
    return alerts


def stale_alert(connector: str, age: timedelta | None, limit: timedelta, *, now: datetime) -> Alert:
    """A connector has had no cycle for longer than ``limit``."""
    when = (
        "has never finished a cycle"
        if age is None
        else f"last finished a cycle {age.total_seconds():.0f} s ago"
    )
    return Alert(
        AlertKind.CONNECTOR_STALE, connector,
        f"{connector} {when} (limit {limit.total_seconds():.0f} s)",
        "check that a daemon is running and ready (`/readyz`), that no cycle of this "
        "connector is stuck (its lease in the `lease` table), and its recent errors in "
        "`clm-hub status`.",
        now, {"limit_s": limit.total_seconds()},
    )  # fmt: skip


def crash_alert(connector: str, error: str, *, now: datetime) -> Alert:
    """A cycle ended with an error outside any connector (the store, the stage engine)."""
    return Alert(
        AlertKind.CYCLE_FAILED, connector,
        f"the cycle stopped with an error: {error}",
        "check that the database is reachable and migrated (`clm-hub db current`), then the "
        "daemon's log (event `cycle.crashed`) for the traceback; the next scheduled cycle "
        "retries.",
        now,
    )  # fmt: skip


class Alerter:
    """Decides which alerts go out and sends them to every sink."""

    def __init__(
        self,
        settings: AlertSettings,
        sinks: Sequence[AlertSink],
        *,
        now: Callable[[], datetime] = now_utc,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sinks = list(sinks)
        self.now = now
        self.on_alert = on_alert
        self._last_sent: dict[tuple[AlertKind, str], datetime] = {}

    async def cycle_finished(self, result: ConnectorResult, *, resolve: bool = True) -> None:
        """Raise what a finished cycle calls for; with ``resolve``, what it no longer shows
        is resolved, so the next relapse alerts at once."""
        alerts = alerts_for_cycle(result, self.settings, now=self.now())
        for kind in CYCLE_KINDS - {a.kind for a in alerts} if resolve else ():
            self.resolved(kind, result.connector)
        for alert in alerts:
            await self.raise_alert(alert)

    async def raise_alert(self, alert: Alert) -> bool:
        """Send ``alert`` unless the same one went out within ``repeat_after``."""
        key = (alert.kind, alert.connector)
        last = self._last_sent.get(key)
        if last is not None and alert.at - last < self.settings.repeat_after:
            return False
        self._last_sent[key] = alert.at
        if self.on_alert is not None:
            self.on_alert(alert)
        for sink in self.sinks:
            try:
                await sink.send(alert)
            except Exception as exc:  # a plugin's sink must not cost the others the alert
                log.error(
                    "alert.sink_failed", sink=type(sink).__name__, kind=alert.kind.value,
                    connector=alert.connector, error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
        return True

    def resolved(self, kind: AlertKind, connector: str) -> None:
        """Forget an alert's rate limit once its cause is gone, so a relapse alerts again."""
        self._last_sent.pop((kind, connector), None)
