"""The Shopify connector's settings: one ``[connectors.<id>]`` table in hub.toml."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from clm_hub import ConnectorSettings

__all__ = ["DEFAULT_API_VERSION", "ShopifySettings"]

DEFAULT_API_VERSION = "2026-10"
"""The newest stable Admin API version when this connector was written (quarterly releases,
each supported for at least 12 months)."""

_SHOP = re.compile(r"^[a-z0-9][a-z0-9-]*(\.myshopify\.com)?$")
_VERSION = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")


class ShopifySettings(ConnectorSettings):
    """How to reach one shop's Admin GraphQL API, and how hard to use it."""

    shop_domain: str
    """The shop's permanent domain, ``acme.myshopify.com`` (or just ``acme``)."""
    access_token: SecretStr
    """Admin API access token (``shpat_...``) of the custom app; or give ``access_token_file``."""
    client_secret: SecretStr | None = None
    """The app's client secret (API secret key); signs webhooks. Needed to accept webhooks."""
    api_version: str = DEFAULT_API_VERSION
    """Admin API version in the URL (``YYYY-01/04/07/10`` or ``unstable``)."""
    page_size: int = Field(default=250, ge=1, le=250)
    """Records per page (Shopify's maximum is 250); lowered automatically to fit the bucket."""
    headroom: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of the query-cost bucket always left for the shop's other apps."""
    bucket_size: float = Field(default=1000.0, gt=0)
    """Cost points assumed in the bucket until Shopify's first answer reports the real size."""
    restore_rate: float = Field(default=50.0, gt=0)
    """Points per second assumed restored until Shopify's first answer reports the real rate."""
    bulk_first_sync: Literal["auto", "always", "never"] = "auto"
    """Read the first full sync with a bulk operation: always, never, or (auto) when the shop
    has at least ``bulk_threshold`` customers/orders."""
    bulk_threshold: int = Field(default=10_000, ge=1)
    """From this many records on, ``auto`` uses a bulk operation for the first full sync."""
    bulk_poll_interval_s: float = Field(default=2.0, gt=0)
    """Seconds between two polls of a running bulk operation."""
    bulk_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    """Cancel a bulk operation running longer than this and page through the API instead."""
    push_mutations_per_request: int = Field(default=50, ge=1, le=100)
    """tagsAdd/tagsRemove mutations batched into one request (10 cost points each)."""
    include_test_orders: bool = False
    """Also read orders placed in test mode (they are skipped by default)."""
    webhook_max_age_s: float | None = Field(default=48 * 3600.0, gt=0)
    """Refuse deliveries whose ``X-Shopify-Triggered-At`` is older than this (``None``: never)."""
    request_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of one API request, in seconds."""

    @field_validator("shop_domain")
    @classmethod
    def _normalise_shop(cls, value: str) -> str:
        shop = value.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
        if not _SHOP.match(shop):
            raise ValueError(
                "give the shop's myshopify.com domain, e.g. 'acme.myshopify.com' (not a custom "
                "domain or an admin URL)"
            )
        return shop if shop.endswith(".myshopify.com") else f"{shop}.myshopify.com"

    @field_validator("api_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError("Admin API versions look like '2026-10' (YYYY-01/04/07/10)")
        return value
