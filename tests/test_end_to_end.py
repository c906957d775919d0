"""`clm-hub sync` against the Shopify and HubSpot simulators over real HTTP.

The same people live in both tools with messy emails; some only in the CRM (prospects).
One cycle pulls both, merges people, computes stages and writes them back: tags in
Shopify, properties in HubSpot. Checked: every Shopify customer carries exactly one stage
tag, the same stage as the person's HubSpot property, foreign tags survive, and a second
cycle with nothing new makes no write calls to either tool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from clm_hub.cli import cli
from clm_hub.sandbox import serve
from clm_hub_plugins.hubspot.simstate import DEFAULT_TOKEN, HubSpotState, RateLimits
from clm_hub_plugins.hubspot.simulator import create_app as hubspot_app
from clm_hub_plugins.shopify.sim_state import ShopState
from clm_hub_plugins.shopify.simulator import create_app as shopify_app

PEOPLE = 12
NOW = datetime.now(UTC)


def seed(shop: ShopState, crm: HubSpotState) -> dict[str, str]:
    """Shopify customers (some repeat buyers) and HubSpot contacts for the same people."""
    hubspot_ids: dict[str, str] = {}
    for i in range(PEOPLE):
        email = f"person{i}@example.com"
        joined = NOW - timedelta(days=400 - i)
        customer = shop.add_customer(
            email=f"  Person{i}@Example.com" if i % 2 else email,
            first_name=f"First{i}",
            tags=["wholesale"] if i % 3 == 0 else [],
            created_at=joined,
            updated_at=joined,
        )
        for n in range(1 + i % 3):  # one, two or three orders
            placed = joined + timedelta(days=30 * n + 1)
            shop.add_order(
                total="40.00", customer_id=customer.id, email=email,
                created_at=placed, updated_at=placed,
            )  # fmt: skip
        if i % 2 == 0:
            hubspot_ids[email] = crm.add_contact(
                email.upper(), firstname=f"First{i}", modified_at=joined, created_at=joined
            )
    for j in range(3):  # people only the CRM knows: prospects
        email = f"lead{j}@example.com"
        hubspot_ids[email] = crm.add_contact(email, modified_at=NOW - timedelta(days=5))
    return hubspot_ids


def shopify_writes(shop: ShopState) -> int:
    return sum(1 for r in shop.requests if "tagsAdd" in r.query or "tagsRemove" in r.query)


def hubspot_writes(crm: HubSpotState) -> int:
    return sum(1 for r in crm.requests if r.path.endswith("/batch/update"))


@pytest.mark.slow
def test_one_cycle_leaves_the_same_stage_in_both_tools_and_a_second_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    shop = ShopState(bucket_capacity=2000.0, restore_rate=1000.0)
    crm = HubSpotState(rate_limits=RateLimits(burst_limit=10_000, search_per_second=1_000))
    hubspot_ids = seed(shop, crm)
    with serve(shopify_app(shop)) as shop_url, serve(hubspot_app(crm)) as crm_url:
        config = tmp_path / "hub.toml"
        config.write_text(
            f'database_url = "sqlite:///{tmp_path}/hub.sqlite3"\nlog_level = "error"\n'
            f'[connectors.shop]\nplugin = "shopify"\nbase_url = "{shop_url}"\n'
            f'shop_domain = "{shop.shop}"\naccess_token = "{shop.access_token}"\n'
            'bulk_first_sync = "never"\n'
            f'[connectors.crm]\nplugin = "hubspot"\nbase_url = "{crm_url}"\n'
            f'access_token = "{DEFAULT_TOKEN}"\nburst_limit = 10000\n'
            "search_limit_per_second = 1000\nindex_lag_seconds = 0\n"
        )
        runner = CliRunner()
        assert runner.invoke(cli, ["db", "upgrade", "--config", str(config)]).exit_code == 0
        first = runner.invoke(cli, ["sync", "--config", str(config)])
        assert first.exit_code == 0, first.output

        stage_of: dict[str, str] = {}
        for customer in shop.customers.values():
            owned = [t for t in customer.tags if t.startswith("clm:stage:")]
            assert len(owned) == 1, customer.tags  # exactly one stage per person
            assert customer.email is not None and customer.first_name is not None
            stage_of[customer.email.strip().lower()] = owned[0].removeprefix("clm:stage:")
            person = int(customer.first_name.removeprefix("First"))
            foreign = [t for t in customer.tags if not t.startswith("clm:")]
            assert foreign == (["wholesale"] if person % 3 == 0 else [])  # untouched
        assert set(stage_of.values()) <= {"new", "loyal", "vip", "at-risk", "lapsed"}
        for email, contact_id in hubspot_ids.items():
            properties = crm.contact(contact_id).properties
            expected = stage_of.get(email, "prospect")
            assert properties.get("clm_stage") == expected, (email, properties)

        writes = (shopify_writes(shop), hubspot_writes(crm))
        assert writes[0] > 0 and writes[1] > 0
        second = runner.invoke(cli, ["sync", "--config", str(config)])
        assert second.exit_code == 0, second.output
        assert (shopify_writes(shop), hubspot_writes(crm)) == writes
