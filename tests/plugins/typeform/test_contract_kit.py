"""The Typeform connector against clm-hub's contract kit.

Typeform declares survey responses and webhooks only, so the kit's contact, order and push
scenarios skip with that reason and its survey scenarios run against the simulator over
real HTTP.
"""

from __future__ import annotations

from clm_hub.testing import ConnectorContract
from clm_hub_plugins.typeform.testkit import TypeformHarness


class TestTypeformContract(ConnectorContract):
    harness = TypeformHarness
