"""APScheduler wiring for the daemon, and the daemon's settings.

Jobs: one per enabled connector on its ``schedule`` (an interval or a crontab line, with
jitter), one per connector for its reconciliation sweep (``reconcile.schedule``), the
stage-only run (``[daemon] stages_schedule``) and housekeeping. Jobs never overlap
(``max_instances=1``), runs missed while the process was stalled or busy collapse into one
(``coalesce``), however late (``misfire_grace_time=None``). What a job does is the daemon's
business, not this module's.

``Schedule`` and ``Reconcile`` live here rather than in ``clm_hub.settings`` because
``DaemonSettings`` needs them and ``HubSettings`` nests ``DaemonSettings``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "AlertSettings",
    "DaemonSettings",
    "Duration",
    "Reconcile",
    "Schedule",
    "add_periodic_job",
    "add_scheduled_job",
    "build_scheduler",
    "schedule_period",
    "trigger_for",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _duration(value: Any) -> Any:
    """``90``, ``"90s"``, ``"500ms"``, ``"15m"``, ``"2h"``, ``"1d"`` or a timedelta."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError("expected a duration such as 500ms, 30s, 15m, 2h or 1d")
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Schedule(BaseModel):
    """When the daemon runs a job: every ``interval``, or on a ``cron`` expression (UTC);
    each run is delayed by up to ``jitter`` so replicas and connectors spread out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration | None = timedelta(minutes=15)
    cron: str | None = None
    jitter: Duration = timedelta(seconds=30)

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"not a crontab expression: {exc}") from None
        return value


class Reconcile(BaseModel):
    """A connector's ``reconcile`` table: the periodic sweep that catches what webhooks and
    incremental pulls missed (lost deliveries, deletes reported late, records that
    surfaced in the tool's API after the cursor had passed their timestamp)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    schedule: Schedule = Schedule(interval=timedelta(hours=6), jitter=timedelta(minutes=5))
    """How often to sweep; the first sweep comes one period after the daemon starts."""
    lookback: Annotated[Duration, Field(gt=timedelta(0))] = timedelta(days=2)
    """Re-read everything changed within this long before the stored cursor (instead of
    the ``[sync] cursor_overlap``). Records that did not change cost no writes."""
    full: bool = False
    """Re-read everything instead (for tools without a reliable modified-since filter);
    give it a low frequency, e.g. ``schedule = { cron = "0 3 * * 0" }``."""


class AlertSettings(BaseModel):
    """The ``[daemon.alerts]`` table: where alerts go and what counts as one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: SecretStr | None = None
    """Slack-compatible incoming-webhook URL (its path is a secret); unset: alerts are only
    logged (event ``alert``) and handed to plugins' sinks."""
    rejected_min: Annotated[int, Field(ge=1)] = 20
    """A spike of rejected records: at least this many in one connector cycle..."""
    rejected_share: Annotated[float, Field(gt=0, le=1)] = 0.05
    """... and at least this share of the records read in it."""
    repeat_after: Duration = timedelta(hours=1)
    """The same alert (kind and connector) is sent at most once per this period."""
    timeout: Duration = timedelta(seconds=10)


class DaemonSettings(BaseModel):
    """The ``[daemon]`` table: leases, shutdown, readiness, webhooks, stages, alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lease_ttl: Duration = timedelta(seconds=60)
    """How long a replica's connector lease lasts without renewal (renewed every third).
    A replica that dies holding one is taken over after at most this long."""
    shutdown_grace: Duration = timedelta(seconds=30)
    """On SIGTERM, how long requests already sent may take to finish before the cycles
    in flight are abandoned (safely: nothing committed is lost, nothing is pushed twice)."""
    run_at_start: bool = True
    """Run every connector once right after start (within its jitter), then on schedule."""
    stale_after: Duration | None = None
    """A connector whose last cycle is older than this makes ``/readyz`` fail and raises a
    stale alert; default: three schedule periods."""
    stages_schedule: Schedule = Schedule(interval=timedelta(hours=1), jitter=timedelta(minutes=1))
    """How often stages are brought up to date without new data (customers turn at-risk or
    lapsed as days pass) and the changes pushed to every tool."""
    housekeeping_every: Duration = timedelta(seconds=60)
    """How often staleness is checked and old webhook deliveries are pruned."""
    webhook_debounce: Duration = timedelta(seconds=2)
    """After a webhook, wait this long for more before the follow-up cycle..."""
    webhook_max_wait: Duration = timedelta(seconds=10)
    """... but never longer than this after the first one."""
    webhook_retention: Duration = timedelta(days=7)
    """How long delivered event ids are remembered to drop duplicates."""
    webhook_max_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    alerts: AlertSettings = AlertSettings()


def trigger_for(schedule: Schedule) -> BaseTrigger:
    """The APScheduler trigger of a connector's schedule (``cron`` wins over ``interval``)."""
    jitter = schedule.jitter.total_seconds() or None
    if schedule.cron:
        trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        trigger.jitter = jitter
        return trigger
    interval = schedule.interval or timedelta(minutes=15)
    return IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter, timezone=UTC)


def schedule_period(schedule: Schedule, *, now: datetime) -> timedelta:
    """The time between two runs: the interval, or the gap between a crontab's next two
    fire times after ``now``."""
    if not schedule.cron:
        return schedule.interval or timedelta(minutes=15)
    trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    if first is None or second is None:  # pragma: no cover - crontabs always fire again
        return timedelta(days=1)
    gap: timedelta = second - first
    return gap


def build_scheduler() -> AsyncIOScheduler:
    """A scheduler for the running event loop, in UTC, with the daemon's job defaults."""
    return AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )


def add_scheduled_job(
    scheduler: AsyncIOScheduler,
    job_id: str,
    schedule: Schedule,
    run: Callable[..., Awaitable[None]],
    *,
    args: Sequence[object] = (),
    now: datetime,
    run_at_start: bool,
) -> None:
    """Schedule ``run(*args)`` as ``job_id``; with ``run_at_start`` the first run is right
    away, spread over the schedule's jitter so replicas and connectors do not all start at
    once, otherwise when the schedule first fires."""
    first: datetime | None = None
    if run_at_start:
        spread = schedule.jitter.total_seconds()
        first = now + timedelta(seconds=random.uniform(0, spread) if spread else 0)
    options: dict[str, Any] = {"next_run_time": first} if first is not None else {}
    scheduler.add_job(
        run,
        trigger_for(schedule),
        args=list(args),
        id=job_id,
        name=job_id,
        replace_existing=True,
        **options,
    )


def add_periodic_job(
    scheduler: AsyncIOScheduler,
    job_id: str,
    every: timedelta,
    run: Callable[[], Awaitable[None]],
    *,
    now: datetime,
) -> None:
    """A housekeeping job every ``every``, first run after one period."""
    scheduler.add_job(
        run,
        IntervalTrigger(seconds=every.total_seconds(), timezone=UTC),
        id=job_id,
        name=job_id,
        replace_existing=True,
        next_run_time=now + every,
    )
