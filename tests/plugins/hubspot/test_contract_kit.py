"""The HubSpot connector passes clm-hub's connector contract kit."""

from __future__ import annotations

from clm_hub.testing import ConnectorContract
from clm_hub_plugins.hubspot.testkit import HubSpotHarness


class TestHubSpotContract(ConnectorContract):
    harness = HubSpotHarness
