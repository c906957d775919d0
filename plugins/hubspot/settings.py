"""The HubSpot connector's settings: auth, pacing, what to read and which properties it owns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints, model_validator

from clm_hub import ConnectorSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "PUBLIC_APP_BURST_LIMIT",
    "TIER_LIMITS",
    "HubSpotSettings",
    "LifecycleSync",
    "OrderSource",
    "Tier",
]

DEFAULT_BASE_URL = "https://api.hubapi.com"
PUBLIC_APP_BURST_LIMIT = 110
"""Marketplace (OAuth) apps get 110 requests per 10 s per installing account, whatever the tier."""

_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


class Tier(StrEnum):
    """The HubSpot subscription tier of the account, which sets the default API limits."""

    STARTER = "starter"
    """Free and Starter."""
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"


TIER_LIMITS: Mapping[Tier, tuple[int, int]] = {
    Tier.STARTER: (100, 250_000),
    Tier.PROFESSIONAL: (190, 625_000),
    Tier.ENTERPRISE: (190, 1_000_000),
}
"""(requests per 10 s per app, requests per day shared by every app of the account)."""


class OrderSource(StrEnum):
    """Where purchases live in the portal."""

    DEALS = "deals"
    """Deals associated with contacts; won deals count as paid orders."""
    ORDERS = "orders"
    """The commerce ``orders`` object (HubSpot Commerce Hub, shop integrations)."""


class LifecycleSync(StrEnum):
    """Whether the hub's stage is also mapped onto HubSpot's built-in ``lifecyclestage``."""

    OFF = "off"
    """Never touch ``lifecyclestage`` (recommended: the hub owns its own properties)."""
    FORWARD_ONLY = "forward_only"
    """Move ``lifecyclestage`` forward only; a mapped stage earlier than the current one is
    skipped, as HubSpot itself would ignore it."""
    ALLOW_BACKWARD = "allow_backward"
    """Also move backwards, by clearing the value and then setting it in a second request."""


PropertyName = Annotated[str, StringConstraints(pattern=_PROPERTY_NAME.pattern)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class HubSpotSettings(ConnectorSettings):
    """Settings of one HubSpot portal connection. Exactly one of the two auth modes is set."""

    # -- auth -----------------------------------------------------------------------------
    access_token: SecretStr | None = None
    """Private-app (static) access token, ``pat-na1-...``. Mutually exclusive with OAuth."""
    client_id: str | None = None
    """OAuth app client id (public/marketplace app)."""
    client_secret: SecretStr | None = None
    """The app's client secret: refreshes OAuth tokens and verifies webhook v3 signatures
    (a private app's client secret may be set alone, for webhooks only)."""
    refresh_token: SecretStr | None = None
    """OAuth refresh token of the installation (long-lived)."""
    webhook_url: str | None = None
    """The target URL exactly as configured in the HubSpot app, when the hub sits behind a
    proxy that changes scheme or host (the v3 signature covers the URL)."""

    # -- pacing ---------------------------------------------------------------------------
    tier: Tier = Tier.STARTER
    burst_limit: Annotated[int, Field(ge=1)] | None = None
    """Requests per burst window; default from ``tier`` (110 for OAuth apps)."""
    burst_window_seconds: Annotated[float, Field(gt=0)] = 10.0
    daily_limit: Annotated[int, Field(ge=1)] | None = None
    """Requests per day for the whole account; default from ``tier``."""
    headroom: Annotated[float, Field(ge=0, lt=1)] = 0.2
    """Share of the daily budget left to the other apps installed in the account."""
    burst_headroom: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Share of the burst window kept free as a margin against latency jitter."""
    search_limit_per_second: Annotated[int, Field(ge=1)] = 5
    """CRM search requests per second (a separate limit, without rate-limit headers)."""
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0

    # -- reading --------------------------------------------------------------------------
    page_size: Annotated[int, Field(ge=1, le=100)] = 100
    """Records per page of the list endpoints (full syncs); HubSpot's maximum is 100."""
    search_page_size: Annotated[int, Field(ge=1, le=200)] = 200
    """Records per page of CRM search (incremental syncs); HubSpot's maximum is 200."""
    index_lag_seconds: Annotated[float, Field(ge=0)] = 5.0
    """Search sees writes after a few seconds; an incremental sync stops this far before now."""
    order_sources: frozenset[OrderSource] = frozenset({OrderSource.DEALS})
    paid_deal_stages: frozenset[str] = frozenset({"closedwon"})
    """Deal stage ids that count as paid (custom pipelines use numeric ids)."""
    use_closed_won_flag: bool = True
    """Also count a deal as paid when HubSpot marks it ``hs_is_closed_won``."""
    paid_order_stages: frozenset[str] = frozenset()
    """``hs_pipeline_stage`` values of commerce orders that count as paid; empty: all orders."""
    default_currency: CurrencyCode | None = None
    """Currency of deals/orders without one (the portal's company currency)."""

    # -- writing --------------------------------------------------------------------------
    # The three property names must match the hub's push field names: by default
    # ``<tag_prefix>_stage``, ``_segment``, ``_nps``, or ``push.field_names`` when set.
    property_group: PropertyName = "clm_hub"
    property_group_label: str = "Lifecycle hub"
    stage_property: PropertyName = "clm_stage"
    segment_property: PropertyName = "clm_segment"
    nps_property: PropertyName = "clm_nps"
    lifecyclestage_sync: LifecycleSync = LifecycleSync.OFF
    lifecyclestage_map: dict[str, str] = Field(default_factory=dict)
    """Hub stage value -> HubSpot ``lifecyclestage`` option, e.g. ``{vip = "evangelist"}``."""

    @model_validator(mode="after")
    def _check(self) -> HubSpotSettings:
        oauth_parts = {
            "client_id": self.client_id,
            "refresh_token": self.refresh_token,
        }
        if self.access_token is not None and self.refresh_token is not None:
            raise ValueError(
                "set either access_token (private app) or client_id + client_secret + "
                "refresh_token (OAuth app), not both"
            )
        if self.access_token is None and self.refresh_token is None:
            raise ValueError(
                "no credentials: set access_token (private app token, pat-...) or "
                "client_id + client_secret + refresh_token (OAuth app)"
            )
        if self.refresh_token is not None:
            missing = [
                name
                for name, value in {**oauth_parts, "client_secret": self.client_secret}.items()
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"OAuth needs client_id, client_secret and refresh_token; "
                    f"missing: {', '.join(missing)}"
                )
        elif self.client_id is not None:
            raise ValueError("client_id is only used with OAuth (refresh_token); remove it")
        owned = [self.stage_property, self.segment_property, self.nps_property]
        if len(set(owned)) != len(owned):
            raise ValueError("stage_property, segment_property and nps_property must differ")
        if not self.order_sources:
            raise ValueError("order_sources needs at least one of: deals, orders")
        if self.lifecyclestage_sync is not LifecycleSync.OFF and not self.lifecyclestage_map:
            raise ValueError(
                "lifecyclestage_sync is on but lifecyclestage_map is empty: map hub stages "
                'to lifecyclestage options, e.g. {new_customer = "customer"}'
            )
        return self

    @property
    def uses_oauth(self) -> bool:
        """Whether requests authenticate with OAuth access tokens (else a private-app token)."""
        return self.refresh_token is not None

    @property
    def effective_burst_limit(self) -> int:
        """Requests per burst window, from the setting or the tier and app type."""
        if self.burst_limit is not None:
            return self.burst_limit
        return PUBLIC_APP_BURST_LIMIT if self.uses_oauth else TIER_LIMITS[self.tier][0]

    @property
    def effective_daily_limit(self) -> int:
        """Requests per day for the whole account, from the setting or the tier."""
        return self.daily_limit if self.daily_limit is not None else TIER_LIMITS[self.tier][1]

    @property
    def owned_properties(self) -> tuple[str, str, str]:
        """The contact properties the hub creates and writes."""
        return (self.stage_property, self.segment_property, self.nps_property)
