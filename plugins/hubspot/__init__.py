"""HubSpot CRM connector for clm-hub: contacts and deals/orders in, stage and segments out.

Registered through the ``clm_hub`` entry-point group as ``hubspot``. See README.md for
scopes, settings and rate limits; ``simulator.py`` serves a local imitation of the API.
"""

from clm_hub import RegisterConnector, hookimpl

from .connector import HubSpot
from .settings import HubSpotSettings, LifecycleSync, OrderSource, Tier
from .writing import PropertySetup

__all__ = [
    "HubSpot",
    "HubSpotSettings",
    "LifecycleSync",
    "OrderSource",
    "PropertySetup",
    "Tier",
    "register_connectors",
]


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    """Offer the HubSpot connector."""
    register(HubSpot)
