"""The ``clm-hub`` command line.

Every command takes ``--config PATH`` (or ``CLM_HUB_CONFIG``). Errors the user can fix
(config, plugins, store) print one clear message and exit 1; unexpected ones show a
traceback, secrets masked.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from clm_hub import __version__
from clm_hub.cli_support import config_option, console, load_cli_settings, user_errors
from clm_hub.daemon_command import run
from clm_hub.demo.command import demo
from clm_hub.malloc import tune_malloc
from clm_hub.plugins import build_plugin_registry
from clm_hub.probe import ProbeResult, probe_connectors
from clm_hub.runtime import build_redactor, configure_connectors, load_registry
from clm_hub.scaffold.command import plugin_new
from clm_hub.stages.commands import report, stages
from clm_hub.store import current_revision, head_revision, open_engine, upgrade
from clm_hub.sync_commands import customers_forget, status, sync

# Re-exported for plugins that add commands through the register_commands hook.
__all__ = ["cli", "config_option", "main", "user_errors"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clm-hub")
def cli() -> None:
    """clm-hub: one customer lifecycle stage, computed centrally, pushed to every tool."""


@cli.command()
@config_option
@user_errors
def plugins(config_path: Path | None) -> None:
    """List every connector plugin with its origin, version and capabilities."""
    settings = load_cli_settings(config_path)
    registry = load_registry(settings)
    out = console()
    table = Table(title="Connectors")
    for column in ("name", "plugin", "origin", "version", "capabilities"):
        table.add_column(column, overflow="fold")
    for name, info in sorted(registry.connectors.items()):
        caps = ", ".join(sorted(c.value for c in info.connector.capabilities))
        table.add_row(name, info.plugin, info.origin, info.connector.version, caps)
    out.print(table)
    if not registry.connectors:
        out.print("No connectors are installed.")
    for failure in registry.failures:
        out.print(
            f"[red]plugin {failure.name!r} ({failure.origin}) failed to load:[/red] "
            f"{escape(failure.error)}"
        )
    if registry.failures:
        sys.exit(1)


@cli.command()
@config_option
@click.option("--offline", is_flag=True, help="Only validate the config; do not call the tools.")
@user_errors
def check(config_path: Path | None, offline: bool) -> None:
    """Validate the config and, per connector, that the tool accepts its credentials."""
    settings = load_cli_settings(config_path)
    registry = load_registry(settings)
    configured = configure_connectors(settings, registry)
    out = console()
    out.print(f"config: {settings.source}")
    out.print(f"database: {_safe_url(settings.database_url)}")
    problems = 0
    for failure in registry.failures:
        problems += 1
        out.print(f"[red]✗ plugin {failure.name}[/red]: {escape(failure.error)}")
    if not configured:
        out.print(escape("no connectors configured (add [connectors.<id>] tables)"))
    probed: dict[str, ProbeResult] = {}
    if not offline:
        redactor = build_redactor(configured)
        probed = {p.connector_id: p for p in asyncio.run(probe_connectors(configured, redactor))}
    for item in configured:
        state = "" if item.enabled else " (disabled)"
        probe = probed.get(item.connector_id)
        if not item.ok:
            problems += 1
            reason = escape(item.error or "")
            out.print(f"[red]✗ {item.connector_id}[/red] ({item.plugin}){state}: {reason}")
        elif probe is not None and probe.error is not None:
            problems += 1
            reason = escape(probe.error)
            out.print(f"[red]✗ {item.connector_id}[/red] ({item.plugin}){state}: {reason}")
        else:
            said = ": credentials accepted" if probe is not None else ""
            out.print(f"[green]✓ {item.connector_id}[/green] ({item.plugin}){state}{said}")
    if problems:
        out.print(f"{problems} problem(s) found")
        sys.exit(1)
    out.print("configuration OK")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the store when used
        return "<unparsable>"


@cli.group()
def db() -> None:
    """Manage the canonical store's schema."""


@db.command("upgrade")
@config_option
@user_errors
def db_upgrade(config_path: Path | None) -> None:
    """Create or migrate the store's tables to this version's schema."""
    settings = load_cli_settings(config_path)
    engine = open_engine(settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    where = _safe_url(settings.database_url)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to {after}")


@db.command("current")
@config_option
@user_errors
def db_current(config_path: Path | None) -> None:
    """Show the store's schema revision and the newest this version ships."""
    settings = load_cli_settings(config_path)
    engine = open_engine(settings.database_url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    status = "up to date" if revision == head else "run `clm-hub db upgrade`"
    click.echo(f"database at {revision or 'empty'}; newest {head} ({status})")


@cli.group()
def customers() -> None:
    """Look up and erase customers."""


cli.add_command(demo)
cli.add_command(sync)
cli.add_command(stages)
cli.add_command(report)
cli.add_command(run)
cli.add_command(status)
customers.add_command(customers_forget)


@cli.group("plugin")
def plugin_group() -> None:
    """Tools for plugin authors."""


plugin_group.add_command(plugin_new)


def build_cli() -> click.Group:
    """The CLI with the sub-commands plugins add through ``register_commands``."""
    registry = build_plugin_registry()
    registry.manager.hook.register_commands(cli=cli)
    return cli


def main() -> None:
    """Console-script entry point."""
    tune_malloc()
    build_cli()(prog_name="clm-hub")
