"""Every hook a clm-hub plugin can implement, grouped by when it runs.

Plugins implement hooks with ``@clm_hub.hookimpl``. Built-in connectors use exactly these
hooks too; nothing here is reserved for the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from clm_hub.connectors.base import RegisterConnector

PROJECT = "clm_hub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# -- start-up ---------------------------------------------------------------------------


@hookspec
def register_connectors(register: RegisterConnector) -> None:
    """Offer connector classes by calling ``register(cls)`` once per class.

    Called once when the plugin manager is built. ``register`` raises ``PluginError`` for a
    class that is not a ``Connector`` subclass, lacks a name or settings model, claims a
    capability without the method behind it, or reuses another plugin's name.

    :param register: the callback that records a connector class.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``clm-hub`` command line.

    Called once while the CLI is assembled, before arguments are parsed.

    :param cli: the top-level ``click`` group; call ``cli.add_command(...)``.
    """
