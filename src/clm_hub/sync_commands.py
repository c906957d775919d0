"""``clm-hub sync``, ``status`` and ``customers forget``."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from clm_hub.cli_support import config_option, console, load_cli_settings, user_errors
from clm_hub.erasure import erase_in_tools, erase_person
from clm_hub.ingest import PageCounts
from clm_hub.lifecycle import StageCatchUp
from clm_hub.plugins import PluginRegistry
from clm_hub.records import now_utc
from clm_hub.runs import RunStatus
from clm_hub.runtime import load_registry
from clm_hub.settings import HubSettings
from clm_hub.stages.changes import hook_notifier
from clm_hub.stages.config import load_rules
from clm_hub.status import read_status
from clm_hub.store import open_store
from clm_hub.sync import CycleResult, LogProgress, ProgressSink, StreamResult, SyncEngine

__all__ = ["customers_forget", "status", "sync"]


class BarProgress:
    """One live line per connector stream with its record count (interactive terminals)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._read: dict[tuple[str, str], int] = {}

    def stream_started(self, connector: str, stream: str, note: str) -> None:
        key = (connector, stream)
        self._read[key] = 0
        self._tasks[key] = self._progress.add_task(f"{connector} {stream}", total=None, read=0)

    def page_written(self, connector: str, stream: str, counts: PageCounts) -> None:
        key = (connector, stream)
        self._read[key] += counts.read
        self._progress.update(self._tasks[key], read=self._read[key])

    def stream_finished(self, result: StreamResult) -> None:
        key = (result.connector, result.stream)
        mark = {"ok": "✓", "partial": "!", "failed": "✗"}.get(result.status.value, "?")
        self._progress.update(
            self._tasks[key],
            description=f"{mark} {result.connector} {result.stream}",
            total=1,
            completed=1,
        )


@click.command()
@config_option
@click.option("--connector", "connector_ids", multiple=True, help="Only this connector id.")
@click.option("--full", is_flag=True, help="Re-read everything instead of resuming.")
@click.option("--dry-run", is_flag=True, help="Read and plan, write nothing; print the plan.")
@click.option(
    "--apply-large", is_flag=True, help="Let through a push that re-tags many records at once."
)
@user_errors
def sync(
    config_path: Path | None,
    connector_ids: tuple[str, ...],
    full: bool,
    dry_run: bool,
    apply_large: bool,
) -> None:
    """Run one cycle (pull, stages, write-back) for every enabled connector and exit.

    Exits 1 when any connector failed, with one line per failure.
    """
    settings = load_cli_settings(config_path)
    registry = load_registry(settings)
    engine = open_store(settings.database_url, background_checkpoints=True)
    out = console()
    try:
        if sys.stdout.isatty():
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.fields[read]:>10,} records"),
                TimeElapsedColumn(),
                console=out,
                transient=False,
            ) as bars:
                progress: ProgressSink = BarProgress(bars)
                result = _cycle(
                    settings, registry, engine, connector_ids, full, dry_run, apply_large, progress
                )
        else:
            progress = LogProgress()
            result = _cycle(
                settings, registry, engine, connector_ids, full, dry_run, apply_large, progress
            )
    finally:
        engine.dispose()
    print_cycle(result, dry_run)
    if result.failed:
        for failed in result.failed:
            click.echo(f"failed: {failed.connector}: {failed.reason}", err=True)
        sys.exit(1)


def _cycle(
    settings: HubSettings,
    registry: PluginRegistry,
    engine: Engine,
    connector_ids: tuple[str, ...],
    full: bool,
    dry_run: bool,
    apply_large: bool,
    progress: ProgressSink,
) -> CycleResult:
    catch_up = StageCatchUp(
        engine, load_rules(settings.stage_rules), notify=hook_notifier(registry.manager)
    )
    with SyncEngine(settings, registry, engine, progress=progress, recompute=catch_up) as hub:
        return asyncio.run(
            hub.run_cycle(
                list(connector_ids) or None, full=full, dry_run=dry_run, apply_large=apply_large
            )
        )


def print_cycle(result: CycleResult, dry_run: bool) -> None:
    title = "Pull cycle (dry run: nothing written)" if dry_run else f"Pull cycle {result.run_id}"
    table = Table(title=title)
    for column in ("connector", "stream", "status", "read", "new", "changed", "unchanged",
                   "rejected", "API calls", "retries", "429s"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("connector", "stream") else "right")
    for connector in result.connectors:
        if connector.error:
            table.add_row(connector.connector, "-", "failed", *["-"] * 8)
        for s in connector.streams:
            c = s.counts
            table.add_row(
                s.connector, s.stream, s.status.value, f"{c.read:,}", f"{c.inserted:,}",
                f"{c.updated:,}", f"{c.unchanged:,}", f"{c.rejected:,}", f"{s.api_calls:,}",
                f"{s.retries:,}", f"{s.throttled:,}",
            )  # fmt: skip
    out = console()
    out.print(table)
    _print_pushes(result, dry_run)
    partial = [c for c in result.connectors if c.status is RunStatus.PARTIAL]
    if partial:
        out.print("Some records were rejected: `clm-hub status` lists them with reasons.")
    out.print(f"{len(result.dirty_customers):,} customer(s) changed.")


def _print_pushes(result: CycleResult, dry_run: bool) -> None:
    pushes = [c.push for c in result.connectors if c.push is not None]
    if not pushes:
        return
    out = console()
    table = Table(title="Write-back plan (nothing sent)" if dry_run else "Write-back")
    for column in ("connector", "status", "to change", "unchanged", "retry later", "given up",
                   "sent", "confirmed", "failed", "batch fill", "API calls", "429s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "connector" else "right")
    for push in pushes:
        plan, counts = push.plan, push.counts
        state = "held" if push.held else ("planned" if dry_run else push.status.value)
        table.add_row(
            push.connector, state, f"{plan.changes:,}", f"{plan.unchanged:,}",
            f"{plan.waiting:,}", f"{plan.given_up:,}", f"{counts.sent:,}",
            f"{counts.confirmed:,}", f"{counts.failed:,}",
            f"{counts.batch_fill(push.max_batch):.0%}" if counts.batches else "-",
            f"{push.api_calls:,}", f"{push.throttled:,}",
        )  # fmt: skip
    out.print(table)
    for push in pushes:
        plan = push.plan
        if plan.by_kind:
            kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(plan.by_kind.items()))
            out.print(f"{push.connector}: {escape(kinds)}")
        for example in plan.examples:
            change = example.change
            parts = [f"+{t}" for t in sorted(change.add_tags)]
            parts += [f"-{t}" for t in sorted(change.remove_tags)]
            parts += [f"{k}={v}" for k, v in sorted(change.set_fields.items())]
            out.print(f"  e.g. {escape(change.external_id)}: {escape(' '.join(parts))}")
        if push.held:
            out.print(
                f"[yellow]{push.connector}: held: this push would change "
                f"{plan.changes_to_tagged:,} of {plan.tagged_before:,} records the hub already "
                f"tagged ({plan.change_share():.0%}, above the limit). Check the rules, then run "
                "`clm-hub sync --apply-large` to send it.[/yellow]"
            )


@click.command()
@config_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--rejected", "recent", default=10, show_default=True, help="Rejected rows shown.")
@user_errors
def status(config_path: Path | None, fmt: str, recent: int) -> None:
    """Show the last run of every stream, cursors and lag, and rejected records."""
    settings = load_cli_settings(config_path)
    engine = open_store(settings.database_url)
    try:
        report = read_status(engine, now=now_utc(), recent=recent)
    finally:
        engine.dispose()
    if fmt == "json":
        payload = {
            "runs": [asdict(r) for r in report.runs],
            "cursors": [asdict(c) for c in report.cursors],
            "rejected_counts": [
                {"connector": k[0], "stream": k[1], "count": n}
                for k, n in sorted(report.rejected_counts.items())
            ],
            "recent_rejected": [asdict(r) for r in report.recent_rejected],
        }
        click.echo(json.dumps(payload, default=_json_default, indent=2))
        return
    out = console()
    runs = Table(title="Last runs")
    for column in ("connector", "stream", "status", "finished", "read", "new", "changed",
                   "rejected", "API calls", "429s", "error"):  # fmt: skip
        runs.add_column(column, overflow="fold")
    for r in report.runs:
        runs.add_row(
            r.connector, r.stream, r.status, _when(r.finished_at), f"{r.records_read:,}",
            f"{r.inserted:,}", f"{r.updated:,}", f"{r.rejected:,}", f"{r.api_calls:,}",
            f"{r.throttled:,}", escape(r.error or ""),
        )  # fmt: skip
    out.print(runs if report.runs else "No runs yet: `clm-hub sync` runs one cycle.")
    cursors = Table(title="Cursors")
    for column in ("connector", "stream", "version", "data up to", "lag", "stored"):
        cursors.add_column(column)
    for c in report.cursors:
        cursors.add_row(
            c.connector, c.stream, str(c.version), _when(c.updated_since), _lag(c.lag_seconds),
            _when(c.stored_at),
        )  # fmt: skip
    if report.cursors:
        out.print(cursors)
    if report.rejected_counts:
        rejected = Table(title="Rejected records (kept for inspection)")
        for column in ("connector", "stream", "external id", "reason", "when"):
            rejected.add_column(column, overflow="fold")
        for x in report.recent_rejected:
            rejected.add_row(
                x.connector, x.stream, x.external_id or "-", escape(x.reason), _when(x.created_at)
            )
        total = sum(report.rejected_counts.values())
        out.print(rejected)
        out.print(
            "in all: "
            + ", ".join(f"{k[0]}/{k[1]} {n:,}" for k, n in sorted(report.rejected_counts.items()))
            + f" ({total:,})"
        )


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


@click.command("forget")
@config_option
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_errors
def customers_forget(config_path: Path | None, email: str, yes: bool) -> None:
    """Erase a person's personal data across the hub, and in every tool that can erase."""
    settings = load_cli_settings(config_path)
    registry = load_registry(settings)
    if not yes and not click.confirm(f"Erase {email} from the hub and the connected tools?"):
        click.echo("nothing erased")
        sys.exit(1)
    engine = open_store(settings.database_url)
    try:
        erasure = erase_person(engine, email, now=now_utc())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        engine.dispose()
    if not erasure.customer_ids:
        click.echo(f"no customer with {erasure.email} is known; a tombstone was kept anyway")
        return
    click.echo(
        f"erased {len(erasure.customer_ids)} customer(s) and their records in the hub; "
        "a tombstone keeps them from being re-created"
    )
    for connector_id, line in asyncio.run(erase_in_tools(settings, registry, erasure)).items():
        click.echo(f"  {connector_id}: {line}")
