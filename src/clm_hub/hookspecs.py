"""Every hook a clm-hub plugin can implement, grouped by when it runs.

Plugins implement hooks with ``@clm_hub.hookimpl``. Built-in connectors use exactly these
hooks too; nothing here is reserved for the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from clm_hub.alerts import RegisterAlertSink
    from clm_hub.connectors.base import RegisterConnector
    from clm_hub.redaction import Redactor
    from clm_hub.settings import HubSettings
    from clm_hub.stages.changes import StageChange

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


# -- the stage engine -------------------------------------------------------------------


@hookspec
def stage_changes(changes: Sequence[StageChange]) -> None:
    """Learn which customers changed stage: for notifications, outbound webhooks, audits.

    Called after a stage step has committed (in ``sync``, the daemon and the demo), with the
    changes in the order they were recorded, in batches of at most 1,000. Delivery is at
    least once: after a crash a batch may come again (``StageChange.id`` increases, so a
    receiver can drop repeats). Runs in the hub's stage step: keep it quick and hand slow
    work to a queue. An exception is logged and does not stop the other plugins.

    :param changes: ``clm_hub.stages.changes.StageChange`` records (customer id and email,
        from and to stage, when, the rule and numbers that decided).
    """


# -- the daemon -------------------------------------------------------------------------


@hookspec
def register_alert_sinks(
    register: RegisterAlertSink, settings: HubSettings, redactor: Redactor
) -> None:
    """Offer places to deliver the daemon's alerts by calling ``register(sink)``.

    Called once when ``clm-hub run`` starts. A sink is any object with
    ``async send(alert: clm_hub.alerts.Alert) -> None`` (and optionally ``async aclose()``,
    called at shutdown); it gets every alert that passed the rate limit (failed or partial
    cycle, stale connector, spike of rejected records, exhausted API budget), each with
    what to do about it. ``send`` should log delivery failures itself; one that raises is
    logged and does not stop the other sinks. The built-in Slack-compatible webhook
    (``[daemon.alerts] webhook_url``) is one such sink.

    :param register: the callback that records a sink.
    :param settings: the hub's settings (``settings.daemon.alerts`` among them).
    :param redactor: masks the hub's secrets in text a sink logs or sends.
    """
