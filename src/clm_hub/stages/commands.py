"""The ``clm-hub stages`` and ``clm-hub report`` commands (``cli.py`` adds them to the group).

Both take ``--config`` (the hub settings: where the store is) and ``--rules`` (the stage rules
TOML; default: the packaged rules, env ``CLM_HUB_STAGE_RULES``), and ``--as-of`` to evaluate at
another moment than now (reproducible reports, what-if checks).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine, func, select

from clm_hub.cli_support import config_option, console, user_errors
from clm_hub.errors import ConfigError, StoreError
from clm_hub.settings import load_settings
from clm_hub.stages.config import StageRules, load_rules
from clm_hub.stages.engine import recompute_full, run_stage_cycle
from clm_hub.stages.explain import explain_customer
from clm_hub.stages.preview import preview_rules
from clm_hub.stages.report import build_report, render_table
from clm_hub.store import current_revision, head_revision, open_engine
from clm_hub.store.tables import metadata

__all__ = ["report", "stages"]

F = TypeVar("F", bound=Callable[..., Any])


def _rules_option(func: F) -> F:
    return click.option(
        "--rules",
        "rules_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="CLM_HUB_STAGE_RULES",
        default=None,
        help="Stage rules TOML (default: the built-in rules; env CLM_HUB_STAGE_RULES).",
    )(func)


def _as_of_option(func: F) -> F:
    return click.option(
        "--as-of",
        "as_of",
        default=None,
        metavar="DATETIME",
        help="Evaluate at this ISO time (UTC unless it has an offset; default: now).",
    )(func)


def _moment(as_of: str | None) -> dt.datetime:
    if as_of is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(as_of)
    except ValueError:
        raise ConfigError(f"--as-of {as_of!r} is not an ISO date or datetime") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@contextmanager
def _store(config_path: Path | None) -> Iterator[Engine]:
    settings = load_settings(config_path)
    engine = open_engine(settings.database_url, background_checkpoints=True)
    try:
        revision, head = current_revision(engine), head_revision()
        if revision != head:
            raise StoreError(
                f"the store is at schema revision {revision or 'empty'}, this clm-hub needs "
                f"{head}: run `clm-hub db upgrade`"
            )
        yield engine
    finally:
        engine.dispose()


@click.command("stages")
@config_option
@_rules_option
@click.option("--explain", "email", metavar="EMAIL", help="Why this customer is in their stage.")
@click.option(
    "--preview",
    "preview_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="RULES.toml",
    help="How many customers would move between stages under these rules (nothing applied).",
)
@click.option("--recompute", is_flag=True, help="Run a stage cycle now (due customers).")
@click.option("--full", is_flag=True, help="With --recompute: everyone, with a new calibration.")
@_as_of_option
@user_errors
def stages(
    config_path: Path | None,
    rules_path: Path | None,
    email: str | None,
    preview_path: Path | None,
    recompute: bool,
    full: bool,
    as_of: str | None,
) -> None:
    """Customers per lifecycle stage; explain one, preview new rules, or recompute."""
    chosen = [name for name, on in (("--explain", email), ("--preview", preview_path),
                                    ("--recompute", recompute)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise click.UsageError(f"use one of {', '.join(chosen)} at a time")
    if full and not recompute:
        raise click.UsageError("--full goes with --recompute")
    rules = load_rules(rules_path or load_settings(config_path).stage_rules)
    now = _moment(as_of)
    with _store(config_path) as engine:
        if email is not None:
            click.echo(explain_customer(engine, rules, email=email, now=now).render())
        elif preview_path is not None:
            candidate = load_rules(preview_path)
            click.echo(preview_rules(engine, rules, candidate, now=now).render())
        elif recompute:
            if full:
                result = recompute_full(engine, rules, now=now)
            else:
                result = run_stage_cycle(engine, rules, now=now)
            click.echo(result.summary())
        else:
            _print_counts(engine, rules)


def _print_counts(engine: Engine, rules: StageRules) -> None:
    with engine.connect() as connection:
        state = metadata.tables["customer_state"].c
        rows = connection.execute(
            select(state.stage, func.count()).group_by(state.stage).order_by(state.stage)
        ).all()
    if not rows:
        click.echo("no stages computed yet: run `clm-hub stages --recompute`")
        return
    counts = {str(stage): int(n) for stage, n in rows}
    order = [*rules.stages, *sorted(set(counts) - set(rules.stages))]
    width = max(len(s) for s in order)
    for stage in order:
        if stage in counts:
            click.echo(f"{stage.ljust(width)}  {counts[stage]:>10,}")
    click.echo(f"{'total'.ljust(width)}  {sum(counts.values()):>10,}")


@click.command("report")
@config_option
@_rules_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@_as_of_option
@user_errors
def report(config_path: Path | None, rules_path: Path | None, fmt: str, as_of: str | None) -> None:
    """KPIs per stage and segment, monthly cohorts and CLV (JSON adds the fitted models)."""
    rules = load_rules(rules_path or load_settings(config_path).stage_rules)
    with _store(config_path) as engine:
        result = build_report(engine, rules, now=_moment(as_of))
    if fmt == "json":
        click.echo(result.to_json())
    elif fmt == "csv":
        click.echo(result.to_csv(), nl=False)
    else:
        out = console()
        for table in render_table(result):
            out.print(table)
