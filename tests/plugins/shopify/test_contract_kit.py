"""The Shopify connector passes clm-hub's connector contract kit."""

from __future__ import annotations

from clm_hub.testing import ConnectorContract
from clm_hub_plugins.shopify.testkit import ShopifyHarness


class TestShopifyContract(ConnectorContract):
    harness = ShopifyHarness
