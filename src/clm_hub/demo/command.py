"""The ``clm-hub demo`` command."""

from __future__ import annotations

from pathlib import Path

import click

from clm_hub.cli_support import console, user_errors

__all__ = ["demo"]


@click.command()
@click.option("--customers", default=2000, show_default=True, help="People in the synthetic shop.")
@click.option("--seed", default=7, show_default=True, help="Same seed, same shop.")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("clm-hub-demo"),
    show_default=True,
    help="Where the demo writes its config, its SQLite store and the simulators' data.",
)
@click.option("--keep-running", is_flag=True, help="Then run the daemon with new orders arriving.")
@user_errors
def demo(customers: int, seed: int, folder: Path, keep_running: bool) -> None:
    """The whole product on local simulators of Shopify and HubSpot: no accounts needed.

    Seeds a synthetic shop, runs a full cycle through the real engine over real HTTP
    (pull, identity resolution, stages, write-back) and shows the result.
    """
    from clm_hub.demo.runner import run_demo
    from clm_hub.log import configure_logging
    from clm_hub.redaction import Redactor

    if customers < 1:
        raise click.BadParameter("at least one customer", param_hint="--customers")
    configure_logging(Redactor(), level="warning")
    run_demo(
        customers=customers,
        seed=seed,
        folder=folder.resolve(),
        keep_running=keep_running,
        console=console(),
    )
