"""The ``clm-hub plugin new NAME`` command."""

from __future__ import annotations

from pathlib import Path

import click

from clm_hub.cli_support import user_errors
from clm_hub.scaffold.generator import generate

__all__ = ["plugin_new"]


@click.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to create the package folder clm-hub-NAME in.",
)
@user_errors
def plugin_new(name: str, directory: Path) -> None:
    """Scaffold a connector plugin package: connector, simulator, contract tests.

    NAME is the connector's name, a lower-case identifier such as ``acme``. The package
    installs with pip, registers through the ``clm_hub`` entry point and passes the
    connector contract kit as generated; adapt it to the real API from there.
    """
    made = generate(name, directory)
    click.echo(f"Created {made.root} ({len(made.files)} files, package {made.package}).")
    click.echo("Next:")
    click.echo(f"  cd {made.root}")
    click.echo("  pip install -e '.[test]'")
    click.echo("  pytest")
    click.echo("Then adapt simulator.py and connector.py to the real API (see README.md).")
