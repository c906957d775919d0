"""Pieces every ``clm-hub`` command shares: the ``--config`` option, error handling,
loading settings with logging set up, and a console."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
from rich.console import Console

from clm_hub.errors import ClmHubError
from clm_hub.log import configure_logging
from clm_hub.redaction import Redactor
from clm_hub.settings import HubSettings, load_settings

__all__ = ["config_option", "console", "load_cli_settings", "user_errors"]

P = ParamSpec("P")
R = TypeVar("R")


PIPED_WIDTH = 160
"""Columns when output goes to a file or a pipe (logs, CI): rich's default of 80 squeezed the
cycle tables' headers to one or two letters."""


def console() -> Console:
    """The console commands print to (no syntax guessing on user data)."""
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPED_WIDTH
    return out


def config_option(func: Callable[P, R]) -> Callable[P, R]:
    """Add ``--config PATH`` to a command (also read from ``CLM_HUB_CONFIG``)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="CLM_HUB_CONFIG",
        default=None,
        help="TOML config file (default: built-in defaults; env CLM_HUB_CONFIG).",
    )(func)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn errors the user can fix into a message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClmHubError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def load_cli_settings(config_path: Path | None, redactor: Redactor | None = None) -> HubSettings:
    """Settings for a command, with logging configured from them."""
    settings = load_settings(config_path)
    configure_logging(redactor or Redactor(), level=settings.log_level, fmt=settings.log_format)
    return settings
