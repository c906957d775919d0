"""The HubSpot simulator as a harness for clm-hub's connector contract kit.

``HubSpotHarness`` seeds a simulated portal, changes and inspects it, and tells the kit how
to reach it. The portal's limits are roomy and its burst window short (0.2 s), so a 429
fault costs a fifth of a second; ``limit_rate`` drops the burst limit to five requests per
half second. Incremental pulls use CRM search with no index lag.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from starlette.types import ASGIApp

from clm_hub.sandbox import FaultPlan
from clm_hub.testing import RateLimitPlan
from clm_hub_plugins import hubspot as plugin

from .mapping import DEALS
from .simstate import DEFAULT_TOKEN, HubSpotState, RateLimits
from .simulator import create_app

__all__ = ["HubSpotHarness"]

PAGE_SIZE = 10
ROOMY = RateLimits(
    burst_limit=10_000, burst_window_s=0.2, daily_limit=1_000_000, search_per_second=1_000
)
TIGHT = RateLimits(
    burst_limit=5, burst_window_s=0.5, daily_limit=1_000_000, search_per_second=1_000
)


class HubSpotHarness:
    """One fresh simulated portal for one contract scenario."""

    connector_name = "hubspot"
    page_size = PAGE_SIZE

    def __init__(self) -> None:
        self.plugin: object = plugin
        self.faults = FaultPlan()
        self.state = HubSpotState(rate_limits=ROOMY)
        self._start = datetime.now(UTC) - timedelta(days=30)
        self._seeded = 0

    def app(self) -> ASGIApp:
        return create_app(self.state, self.faults)

    def connector_settings(self, base_url: str) -> Mapping[str, object]:
        limits = self.state.rate_limits
        return {
            "base_url": base_url,
            "access_token": DEFAULT_TOKEN,
            "page_size": PAGE_SIZE,
            "search_page_size": PAGE_SIZE,
            "burst_limit": limits.burst_limit,
            "burst_window_seconds": limits.burst_window_s,
            "search_limit_per_second": limits.search_per_second,
            "index_lag_seconds": 0,
        }

    def _next_time(self) -> datetime:
        self._seeded += 1
        return self._start + timedelta(minutes=self._seeded)

    def add_contacts(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            at = self._next_time()
            ids.append(
                self.state.add_contact(
                    f"person{self._seeded}@example.com",
                    firstname=f"First{self._seeded}",
                    modified_at=at,
                    created_at=at,
                )
            )
        return ids

    def add_orders(self, count: int) -> list[str]:
        [buyer] = self.add_contacts(1)
        ids = []
        for _ in range(count):
            at = self._next_time()
            deal = self.state.add_deal(
                amount="25.00", closed_at=at, contact_id=buyer, modified_at=at
            )
            ids.append(DEALS.id_prefix + deal)
        return ids

    def touch_contact(self, external_id: str) -> None:
        self.state.update_object("contacts", external_id, {"firstname": "Changed"})

    def field_values(self, external_id: str) -> Mapping[str, str | None]:
        with self.state.lock:
            return dict(self.state.contact(external_id).properties)

    def fail_record(self, external_id: str) -> None:
        """Delete the contact: HubSpot reports OBJECT_NOT_FOUND for it alone (207)."""
        with self.state.lock:
            del self.state.objects["contacts"][int(external_id)]

    def limit_rate(self) -> RateLimitPlan:
        self.state.rate_limits = TIGHT
        settings = {"burst_limit": TIGHT.burst_limit, "burst_window_seconds": TIGHT.burst_window_s}
        per_second = TIGHT.burst_limit / TIGHT.burst_window_s
        return RateLimitPlan(settings=settings, burst=TIGHT.burst_limit, per_second=per_second)

    def throttled_count(self) -> int:
        with self.state.lock:
            return sum(self.state.throttled.values())
