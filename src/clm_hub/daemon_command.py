"""``clm-hub run``: the daemon as an operator starts it.

The heavy imports (scheduler, ASGI server, metrics) happen when the command runs, so the
rest of the CLI starts as fast as before.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from clm_hub.cli_support import config_option, load_cli_settings, user_errors

__all__ = ["run"]


@click.command("run")
@config_option
@user_errors
def run(config_path: Path | None) -> None:
    """Run the daemon: connector cycles on their schedules, reconciliation sweeps, stage-only
    runs for time-based changes, webhooks, /healthz, /readyz and /metrics on
    http_host:http_port.

    SIGTERM or SIGINT stops it gracefully (exit 0): no new cycles, requests already sent
    finish, nothing is lost or pushed twice. On SQLite only one daemon may run per store;
    several replicas need PostgreSQL.
    """
    import asyncio
    import logging

    import prometheus_client
    import structlog

    from clm_hub.daemon import Daemon
    from clm_hub.lifecycle import StageCatchUp
    from clm_hub.log import configure_logging
    from clm_hub.runtime import build_redactor, configure_connectors, load_registry
    from clm_hub.stages.changes import hook_notifier
    from clm_hub.stages.config import load_rules
    from clm_hub.store import open_store

    settings = load_cli_settings(config_path)
    config = settings.daemon
    registry = load_registry(settings)
    redactor = build_redactor(configure_connectors(settings, registry))
    if config.alerts.webhook_url is not None:
        redactor.add([config.alerts.webhook_url.get_secret_value()])
    rules = load_rules(settings.stage_rules)
    engine = open_store(settings.database_url, background_checkpoints=True)
    recompute = StageCatchUp(engine, rules, notify=hook_notifier(registry.manager))
    if engine.url.password:
        redactor.add([str(engine.url.password)])
    configure_logging(redactor, level=settings.log_level, fmt=settings.log_format)
    # The daemon logs skipped and failed jobs itself, as structured events.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # Process-wide switch of the client library: no `*_created` series next to counters.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    log = structlog.get_logger("clm_hub.daemon")
    for failure in registry.failures:
        log.error("plugin.failed", plugin=failure.name, origin=failure.origin, error=failure.error)

    async def main() -> int:
        daemon = Daemon(
            settings, registry, engine, config=config, redactor=redactor, recompute=recompute
        )
        return await daemon.run()

    try:
        code = asyncio.run(main())
    finally:
        engine.dispose()
    sys.exit(code)
