"""Helpers for testing connectors: shipped with clm-hub so plugin authors get them too.

``ConnectorContract`` (contract.py) runs the connector contract kit against a plugin's
simulator through a ``ConnectorHarness`` the plugin implements (harness.py); runner.py
holds what the scenarios share. ``VirtualClock`` makes pacing tests instant.
"""

from clm_hub.testing.clock import VirtualClock
from clm_hub.testing.contract import SCENARIOS, ConnectorContract, run_scenario
from clm_hub.testing.harness import (
    ConnectorHarness,
    FieldsHarness,
    LoopbackServer,
    OrdersHarness,
    RateLimitPlan,
    SurveyHarness,
    TagsHarness,
)
from clm_hub.testing.runner import ContractRun, ContractViolation, Scenario, ScenarioSkipped

__all__ = [
    "SCENARIOS",
    "ConnectorContract",
    "ConnectorHarness",
    "ContractRun",
    "ContractViolation",
    "FieldsHarness",
    "LoopbackServer",
    "OrdersHarness",
    "RateLimitPlan",
    "Scenario",
    "ScenarioSkipped",
    "SurveyHarness",
    "TagsHarness",
    "VirtualClock",
    "run_scenario",
]
