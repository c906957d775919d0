"""A hub cycle with Shopify and Typeform over real HTTP: NPS answers land on the right
customers (joined by email, whatever the case), the stage engine classes them, and a
second cycle re-reads only the boundary answer (``since`` is inclusive), changing nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

import clm_hub_plugins.shopify as shopify_plugin
import clm_hub_plugins.typeform as typeform_plugin
from clm_hub.lifecycle import StageCatchUp
from clm_hub.linking import customer_t, response_t, state_t
from clm_hub.plugins import build_plugin_registry
from clm_hub.sandbox import serve
from clm_hub.settings import HubSettings
from clm_hub.stages.config import load_rules
from clm_hub.store import upgrade
from clm_hub.store.tables import RejectedRecord
from clm_hub.sync import CycleResult, SyncEngine
from clm_hub_plugins.shopify.sim_state import ShopState
from clm_hub_plugins.shopify.simulator import create_app as shopify_app
from clm_hub_plugins.typeform.simstate import DEFAULT_TOKEN, TypeformState
from clm_hub_plugins.typeform.simulator import create_app as typeform_app

NOW = datetime.now(UTC)
FORM = "NpsQ2"
rejected_t = RejectedRecord.__table__  # type: ignore[attr-defined]

# email in the shop -> (how the survey names them, score, expected NPS class)
PEOPLE = {
    "ana@example.com": ({"email": "  Ana@Example.COM"}, 10, "promoter"),
    "ben@example.com": ({"email": "ben@example.com", "customer_id": "C-2"}, 7, "passive"),
    "cy@example.com": ({"email_answer": "CY@example.com"}, 3, "detractor"),
}


def seed(shop: ShopState, surveys: TypeformState) -> None:
    for i, email in enumerate(PEOPLE):
        joined = NOW - timedelta(days=200 - i)
        customer = shop.add_customer(email=email, first_name=f"P{i}", created_at=joined,
                                     updated_at=joined)  # fmt: skip
        shop.add_order(total="40.00", customer_id=customer.id, email=email,
                       created_at=joined + timedelta(days=1), updated_at=joined)  # fmt: skip
    surveys.add_form(FORM)
    for i, (identity, score, _) in enumerate(PEOPLE.values()):
        surveys.add_response(FORM, score=score, submitted_at=NOW - timedelta(days=3 - i),
                             **identity)  # type: ignore[arg-type]  # fmt: skip
    # An older answer from Ana: the latest answer is the one that counts.
    surveys.add_response(
        FORM, score=2, email="ana@example.com", submitted_at=NOW - timedelta(days=30)
    )
    surveys.add_response(FORM, score=9, submitted_at=NOW - timedelta(days=5))  # anonymous
    # The NPS question left unanswered: skipped, neither a record nor a rejection.
    surveys.add_response(
        FORM, score=None, email="ana@example.com", submitted_at=NOW - timedelta(days=9)
    )


def cycle(store: Engine, shop_url: str, shop: ShopState, surveys_url: str) -> CycleResult:
    settings = HubSettings.model_validate(
        {
            "database_url": str(store.url),
            "connectors": {
                "shop": {"plugin": "shopify", "base_url": shop_url, "shop_domain": shop.shop,
                         "access_token": shop.access_token, "bulk_first_sync": "never"},
                "surveys": {"plugin": "typeform", "base_url": surveys_url,
                            "token": DEFAULT_TOKEN, "forms": [FORM]},
            },
        }
    )  # fmt: skip
    registry = build_plugin_registry(
        entry_points=False, extra={"shopify": shopify_plugin, "typeform": typeform_plugin}
    )
    catch_up = StageCatchUp(store, load_rules(settings.stage_rules))
    return asyncio.run(SyncEngine(settings, registry, store, recompute=catch_up).run_cycle())


@pytest.mark.slow
def test_nps_answers_join_shop_customers_by_email_and_get_their_class(engine: Engine) -> None:
    upgrade(engine)
    shop = ShopState(bucket_capacity=2000.0, restore_rate=1000.0)
    surveys = TypeformState()  # Typeform's own 2 requests per second
    seed(shop, surveys)
    with serve(shopify_app(shop)) as shop_url, serve(typeform_app(surveys)) as surveys_url:
        first = cycle(engine, shop_url, shop, surveys_url)
        assert not first.failed, [c.reason for c in first.failed]
        with engine.connect() as conn:
            answers = conn.execute(
                select(customer_t.c.email, response_t.c.score)
                .join(customer_t, customer_t.c.id == response_t.c.customer_id)
                .order_by(customer_t.c.email, response_t.c.answered_at)
            ).all()
            classes: dict[str | None, str | None] = dict(
                conn.execute(
                    select(customer_t.c.email, state_t.c.nps_class).join(
                        state_t, state_t.c.customer_id == customer_t.c.id
                    )
                ).all()
            )
            customers = conn.execute(select(customer_t.c.email)).scalars().all()
            rejected = conn.execute(select(rejected_t.c.stream, rejected_t.c.reason)).all()
        assert answers == [
            ("ana@example.com", 2), ("ana@example.com", 10),
            ("ben@example.com", 7), ("cy@example.com", 3),
        ]  # fmt: skip
        assert {email: classes[email] for email in PEOPLE} == {
            email: expected for email, (_, _, expected) in PEOPLE.items()
        }
        assert sorted(customers) == sorted(PEOPLE)  # nobody new: every answer found its buyer
        [(stream, reason)] = rejected
        assert stream == "survey_responses" and "no respondent identity" in reason

        responses_calls = len(surveys.calls(f"/forms/{FORM}/responses"))
        second = cycle(engine, shop_url, shop, surveys_url)
    [typeform] = [c for c in second.connectors if c.connector == "surveys"]
    [stream] = typeform.streams
    assert stream.counts.inserted == 0 and stream.counts.updated == 0
    assert stream.counts.unchanged >= 1  # the inclusive boundary answer, read again
    later = surveys.calls(f"/forms/{FORM}/responses")[responses_calls:]
    assert "since=" in later[0].query and "sort=submitted_at%2Casc" in later[0].query
