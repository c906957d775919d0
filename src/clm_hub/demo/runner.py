"""Run the whole product against the built-in simulators: seed, sync, show, (keep running).

Everything goes through the real engine over real HTTP on loopback: the Shopify, HubSpot
and Typeform simulators are served exactly as the tests serve them, the hub is configured by
a TOML file written into the demo folder, and the store is a SQLite file there, so
``clm-hub status``, ``report`` and ``stages --explain`` work on it afterwards.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select

from clm_hub.cli_support import console as cli_console
from clm_hub.demo.progress import SeedProgress, demo_progress
from clm_hub.demo.shop import Person, people
from clm_hub.lifecycle import StageCatchUp
from clm_hub.linking import customer_t, state_t
from clm_hub.runtime import load_registry
from clm_hub.sandbox import serve
from clm_hub.settings import load_settings
from clm_hub.stages.changes import hook_notifier
from clm_hub.stages.config import load_rules
from clm_hub.stages.explain import explain_customer
from clm_hub.store import open_engine, upgrade
from clm_hub.sync import CycleResult, ProgressSink, SyncEngine
from clm_hub.sync_commands import print_cycle

if TYPE_CHECKING:
    from clm_hub_plugins.hubspot.simstate import HubSpotState
    from clm_hub_plugins.shopify.sim_state import ShopState
    from clm_hub_plugins.typeform.simstate import TypeformState

__all__ = ["DemoResult", "DemoWorld", "run_demo"]


@dataclass
class DemoResult:
    """What the demo did, for the caller and the end-to-end test."""

    config: Path
    cycle: CycleResult
    people: int
    buyers: int
    orders: int
    crm_only: int
    answers: int


LOG_LIMIT = 500
"""Requests and webhooks each simulator remembers (the newest): enough for the tests'
checks, and small for a shop of a million (a logged Shopify push request holds ~35 kB of
query and variables: 5,000 of them were ~170 MB)."""
PROGRESS_FROM = 20_000
"""From this many people on, seeding and the first sync show progress."""
SURVEY_PER_SECOND = 20
"""The demo's Typeform pace (the real API allows 2 requests/s; the demo shows the engine)."""
SURVEY_FORM = "nps-demo"
"""The demo's NPS survey (a Typeform form with an ``nps`` question and hidden email)."""


@dataclass
class Seeded:
    """What the seeding put into the simulators."""

    buyers: int = 0
    orders: int = 0
    crm_only: int = 0
    answers: int = 0


def _seed(
    shop: object,
    crm: object,
    surveys: object,
    count: int,
    seed: int,
    progress: SeedProgress | None,
) -> Seeded:
    from clm_hub_plugins.hubspot.simstate import HubSpotState
    from clm_hub_plugins.shopify.sim_state import ShopState
    from clm_hub_plugins.typeform.simstate import TypeformState

    assert isinstance(shop, ShopState) and isinstance(crm, HubSpotState)
    assert isinstance(surveys, TypeformState)
    seeded = Seeded()
    with shop.batch(), crm.batch(), surveys.batch():
        for person in people(count, seed=seed):
            _seed_person(shop, crm, surveys, person, seeded)
            if progress is not None and (
                (person.index + 1) % 1000 == 0 or person.index + 1 == count
            ):
                progress.seeded(person.index + 1)
    return seeded


def _seed_person(
    shop: ShopState, crm: HubSpotState, surveys: TypeformState, person: Person, seeded: Seeded
) -> None:
    """Put one person into the tools that know them (one at a time: flat memory)."""
    if person.purchases:
        seeded.buyers += 1
        customer = shop.add_customer(
            email=person.email, first_name=person.first_name, phone=person.phone,
            tags=["newsletter"] if person.index % 4 == 0 else [],
            created_at=person.joined, updated_at=person.joined,
        )  # fmt: skip
        for purchase in person.purchases:
            seeded.orders += 1
            shop.add_order(
                total=purchase.total, customer_id=customer.id, email=person.email,
                currency="USD",
                financial_status="REFUNDED" if purchase.status == "REFUNDED" else "PAID",
                refunded=purchase.total if purchase.status == "REFUNDED" else Decimal(0),
                cancelled_at=purchase.at if purchase.status == "CANCELLED" else None,
                created_at=purchase.at, updated_at=purchase.at,
            )  # fmt: skip
    elif person.crm_email is not None:
        seeded.crm_only += 1
    if person.crm_email is not None:
        props = {"phone": person.crm_phone} if person.crm_phone else {}
        crm.add_contact(
            person.crm_email, firstname=person.first_name, properties=props,
            created_at=person.joined, modified_at=person.joined,
        )  # fmt: skip
    respondent = person.email if person.purchases else person.crm_email
    for answer in person.nps if respondent is not None else ():
        # The survey link carries the address the shop knows (hidden field `email`).
        seeded.answers += 1
        surveys.add_response(
            SURVEY_FORM, score=answer.score, email=respondent, submitted_at=answer.at
        )


def _write_config(folder: Path, shop_url: str, crm_url: str, survey_url: str, shop: object) -> Path:
    from clm_hub_plugins.hubspot.simstate import DEFAULT_TOKEN
    from clm_hub_plugins.shopify.sim_state import ShopState
    from clm_hub_plugins.typeform.simstate import DEFAULT_TOKEN as SURVEY_TOKEN

    assert isinstance(shop, ShopState)
    config = folder / "hub.toml"
    config.write_text(
        "# Written by `clm-hub demo`: the hub pointed at the local simulators.\n"
        f'database_url = "sqlite:///{folder / "demo.sqlite3"}"\n'
        'log_level = "warning"\n'
        "http_port = 8787\n"
        f'[connectors.shop]\nplugin = "shopify"\nbase_url = "{shop_url}"\n'
        f'shop_domain = "{shop.shop}"\naccess_token = "{shop.access_token}"\n'
        "bulk_poll_interval_s = 0.5\n"
        'schedule = { interval = "20s", jitter = "2s" }\n'
        f'[connectors.crm]\nplugin = "hubspot"\nbase_url = "{crm_url}"\n'
        f'access_token = "{DEFAULT_TOKEN}"\nburst_limit = 1000\n'
        "search_limit_per_second = 100\nindex_lag_seconds = 0\n"
        'schedule = { interval = "20s", jitter = "2s" }\n'
        f'[connectors.surveys]\nplugin = "typeform"\nbase_url = "{survey_url}"\n'
        f'token = "{SURVEY_TOKEN}"\nforms = ["{SURVEY_FORM}"]\nnps_ref = "nps_score"\n'
        f"requests_per_second = {SURVEY_PER_SECOND}\n"
        'schedule = { interval = "20s", jitter = "2s" }\n',
        encoding="utf-8",
    )
    return config


class DemoWorld:
    """The simulators seeded with a synthetic shop, served on loopback, and the hub's
    config and store for them; a context manager so tests can run more cycles."""

    def __init__(
        self,
        *,
        customers: int,
        seed: int,
        folder: Path,
        seeding: SeedProgress | None = None,
    ) -> None:
        from clm_hub_plugins.hubspot.simstate import HubSpotState, RateLimits
        from clm_hub_plugins.shopify.sim_state import ShopState
        from clm_hub_plugins.typeform.simstate import TypeformState

        self.customers, self.seed, self.folder = customers, seed, folder
        self.seeding = seeding
        # Generous limits (a large plan's): the demo shows the engine, not the waiting.
        # The simulators keep their records in SQLite files in the folder (flat memory).
        folder.mkdir(parents=True, exist_ok=True)
        self.shop = ShopState(
            bucket_capacity=20_000.0,
            restore_rate=20_000.0,
            log_limit=LOG_LIMIT,
            path=folder / "shopify-sim.sqlite3",
        )
        self.crm = HubSpotState(
            rate_limits=RateLimits(burst_limit=1000, search_per_second=100),
            log_limit=LOG_LIMIT,
            path=folder / "hubspot-sim.sqlite3",
        )
        self.surveys = TypeformState(
            requests_per_second=SURVEY_PER_SECOND,
            retry_after_s=0.1,
            path=folder / "typeform-sim.sqlite3",
        )
        self.surveys.add_form(SURVEY_FORM)
        self._stack = ExitStack()
        # Closed last, after the servers stopped.
        self._stack.callback(self.surveys.close)
        self._stack.callback(self.crm.close)
        self._stack.callback(self.shop.close)

    def __enter__(self) -> DemoWorld:
        from clm_hub_plugins.hubspot.simulator import create_app as hubspot_app
        from clm_hub_plugins.shopify.simulator import create_app as shopify_app
        from clm_hub_plugins.typeform.simulator import create_app as typeform_app

        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("demo.sqlite3*"):
            stale.unlink()
        self.seeded = _seed(
            self.shop, self.crm, self.surveys, self.customers, self.seed, self.seeding
        )
        self.buyers, self.orders = self.seeded.buyers, self.seeded.orders
        self.crm_only = self.seeded.crm_only
        self.shop_url = self._stack.enter_context(serve(shopify_app(self.shop)))
        self.crm_url = self._stack.enter_context(serve(hubspot_app(self.crm)))
        self.survey_url = self._stack.enter_context(serve(typeform_app(self.surveys)))
        self.config = _write_config(
            self.folder, self.shop_url, self.crm_url, self.survey_url, self.shop
        )
        self.settings = load_settings(self.config)
        self.engine = open_engine(self.settings.database_url, background_checkpoints=True)
        self._stack.callback(self.engine.dispose)
        upgrade(self.engine)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def cycle(
        self,
        *,
        apply_large: bool = False,
        dry_run: bool = False,
        progress: ProgressSink | None = None,
    ) -> CycleResult:
        """One cycle of the real engine: pull every tool, stages, write-back."""
        registry = load_registry(self.settings)
        catch_up = StageCatchUp(
            self.engine,
            load_rules(self.settings.stage_rules),
            notify=hook_notifier(registry.manager),
        )
        with SyncEngine(
            self.settings, registry, self.engine, progress=progress, recompute=catch_up
        ) as hub:
            return asyncio.run(hub.run_cycle(apply_large=apply_large, dry_run=dry_run))


def run_demo(
    *,
    customers: int,
    seed: int,
    folder: Path,
    keep_running: bool = False,
    console: Console | None = None,
) -> DemoResult:
    """Seed the simulators, run one full cycle through the real engine and show the result."""
    out = console or cli_console()
    started = time.perf_counter()
    with ExitStack() as stack:
        with demo_progress(out, total=customers, enabled=customers >= PROGRESS_FROM) as (
            seeding,
            progress,
        ):
            world = stack.enter_context(
                DemoWorld(customers=customers, seed=seed, folder=folder, seeding=seeding)
            )
            out.print(
                f"Synthetic shop (seed {seed}): {customers:,} people, {world.buyers:,} buyers "
                f"with {world.orders:,} orders in Shopify, {world.crm_only:,} people only in "
                f"the CRM, {world.seeded.answers:,} NPS answers in Typeform."
            )
            out.print(
                f"Simulators: Shopify at {world.shop_url}, HubSpot at {world.crm_url}, "
                f"Typeform at {world.survey_url}"
            )
            # The first push tags everybody: nothing was tagged before, so nothing is held.
            cycle = world.cycle(apply_large=True, progress=progress)
        print_cycle(cycle, dry_run=False)
        _show(out, world.engine, world.shop, world.crm)
        out.print(f"Done in {time.perf_counter() - started:.1f} s.")
        _next_steps(out, world.config)
        if keep_running:
            dashboard = f"http://{world.settings.http_host}:{world.settings.http_port}"
            _keep_running(out, world.config, world.shop, world.surveys, seed, dashboard)
        return DemoResult(
            world.config,
            cycle,
            customers,
            world.buyers,
            world.orders,
            world.crm_only,
            world.seeded.answers,
        )


def _show(out: Console, engine: Engine, shop: object, crm: object) -> None:
    from clm_hub_plugins.hubspot.simstate import HubSpotState
    from clm_hub_plugins.shopify.sim_state import ShopState

    assert isinstance(shop, ShopState) and isinstance(crm, HubSpotState)
    with engine.connect() as conn:
        stages: dict[str, int] = dict(
            conn.execute(select(state_t.c.stage, func.count()).group_by(state_t.c.stage)).all()
        )
        nps: dict[str | None, int] = dict(
            conn.execute(
                select(state_t.c.nps_class, func.count()).group_by(state_t.c.nps_class)
            ).all()
        )
        segments: Counter[str] = Counter()
        for (values,) in conn.execute(select(state_t.c.segments)):
            segments.update(values or [])
        examples = {
            stage: email
            for stage, email in conn.execute(
                select(state_t.c.stage, func.min(customer_t.c.email))
                .join(customer_t, customer_t.c.id == state_t.c.customer_id)
                .where(customer_t.c.email.is_not(None))
                .group_by(state_t.c.stage)
            )
        }
    table = Table(title="Customers per stage")
    table.add_column("stage")
    table.add_column("customers", justify="right")
    for stage, count in sorted(stages.items(), key=lambda item: -item[1]):
        table.add_row(stage, f"{count:,}")
    out.print(table)
    top = ", ".join(f"{name} {n:,}" for name, n in segments.most_common(8))
    out.print(f"Segments: {top}")
    classes = ("promoter", "passive", "detractor")
    out.print("NPS (latest answer per customer): " + ", ".join(
        f"{name} {nps.get(name, 0):,}" for name in classes
    ))  # fmt: skip
    rules = load_rules(None)
    shown = [stage for stage in ("vip", "loyal", "at-risk", "new") if stage in examples][:1]
    for stage in shown:
        if stage in examples:
            out.print(
                explain_customer(
                    engine, rules, email=examples[stage], now=datetime.now(UTC)
                ).render(),
                markup=False,
            )
    tagged = shop.count_tagged("clm:")
    stamped = crm.objects["contacts"].count_having("clm_stage")
    out.print(
        f"Pushed: {tagged:,} Shopify customers carry clm: tags (their other tags untouched); "
        f"{stamped:,} HubSpot contacts have the clm_stage property."
    )


def _next_steps(out: Console, config: Path) -> None:
    out.print("Where to look next:")
    for line in (
        f"clm-hub status --config {config}",
        f"clm-hub report --config {config}",
        f"clm-hub stages --config {config} --explain EMAIL",
        "clm-hub demo --keep-running   (the daemon, with new orders arriving)",
    ):
        out.print(f"  {line}", markup=False)


def _keep_running(
    out: Console, config: Path, shop: object, surveys: object, seed: int, dashboard: str
) -> None:
    """Run the daemon on the demo config while new orders and survey answers arrive,
    until Ctrl-C."""
    from clm_hub.daemon_command import run as run_command
    from clm_hub_plugins.shopify.sim_state import ShopState
    from clm_hub_plugins.typeform.simstate import TypeformState

    assert isinstance(shop, ShopState) and isinstance(surveys, TypeformState)
    stop = threading.Event()

    def new_orders() -> None:
        rng = random.Random(seed)
        while len(shop.customers) and not stop.wait(3.0):
            buyer = shop.customer_at(rng.randrange(len(shop.customers)))
            if buyer is None:
                continue
            now = datetime.now(UTC)
            shop.add_order(
                total=Decimal(f"{rng.uniform(15, 120):.2f}"), customer_id=buyer.id,
                email=buyer.email, currency="USD", created_at=now, updated_at=now,
            )  # fmt: skip
            shop.update_customer(buyer.id)
            if rng.random() < 0.3 and buyer.email:  # some buyers answer the survey too
                surveys.add_response(
                    SURVEY_FORM, score=rng.choice(range(11)), email=buyer.email, submitted_at=now
                )

    feeder = threading.Thread(target=new_orders, name="demo-orders", daemon=True)
    feeder.start()
    out.print(
        "Running the daemon (Ctrl-C to stop); a new order arrives every 3 s, and now and then "
        "an NPS answer."
    )
    out.print(f"Dashboard: {dashboard}/  (the same as JSON: {dashboard}/api/summary)")
    try:
        run_command.main(["--config", str(config)], standalone_mode=False)
    finally:
        stop.set()


def demo_people(count: int, seed: int) -> list[Person]:
    """The demo's people, for tests that check the invariants against the source."""
    return list(people(count, seed=seed))
