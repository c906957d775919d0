"""Built-in Shopify connector: customers and orders in, stage tags out, over Admin GraphQL.

Registered through the ``clm_hub`` entry-point group as ``shopify``; see README.md for the
scopes, settings and limits, and ``simulator.py`` for the local stand-in of the API.
"""

from __future__ import annotations

from clm_hub import RegisterConnector, hookimpl

from .connector import Shopify
from .settings import ShopifySettings

__all__ = ["Shopify", "ShopifySettings", "register_connectors"]


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    """Offer the Shopify connector."""
    register(Shopify)
