"""The Shopify simulator as a harness for clm-hub's connector contract kit.

``ShopifyHarness`` seeds a simulated shop, changes and inspects it, and tells the kit how to
reach it. The shop's query-cost bucket restores fast (1000 points/s) so throttling faults
cost milliseconds; ``limit_rate`` shrinks it to five page requests at once and ten a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from starlette.types import ASGIApp

from clm_hub.sandbox import FaultPlan
from clm_hub.testing import RateLimitPlan
from clm_hub_plugins import shopify as plugin

from .simulator import CostBucket, ShopState, create_app

__all__ = ["ShopifyHarness"]

PAGE_SIZE = 10
PAGE_COST = 2 + PAGE_SIZE
"""Query cost Shopify charges for one page of customers (2 + 1 per node requested)."""


class ShopifyHarness:
    """One fresh simulated shop for one contract scenario."""

    connector_name = "shopify"
    page_size = PAGE_SIZE

    def __init__(self) -> None:
        self.plugin: object = plugin
        self.faults = FaultPlan()
        self.state = ShopState(bucket_capacity=2000.0, restore_rate=1000.0)
        self._start = self.state.now() - timedelta(days=30)
        self._seeded = 0

    def app(self) -> ASGIApp:
        return create_app(self.state, self.faults)

    def connector_settings(self, base_url: str) -> Mapping[str, object]:
        return {
            "base_url": base_url,
            "shop_domain": self.state.shop,
            "access_token": self.state.access_token,
            "page_size": PAGE_SIZE,
            "bulk_first_sync": "never",
            "headroom": 0.0,
            "bucket_size": self.state.bucket.capacity,
            "restore_rate": self.state.bucket.restore_rate,
        }

    def _next_time(self) -> timedelta:
        # Shopify stamps to the second; a minute apart keeps every record distinct.
        self._seeded += 1
        return timedelta(minutes=self._seeded)

    def add_contacts(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            at = self._start + self._next_time()
            customer = self.state.add_customer(
                email=f"person{self._seeded}@example.com",
                first_name=f"First{self._seeded}",
                created_at=at,
                updated_at=at,
            )
            ids.append(str(customer.id))
        return ids

    def add_orders(self, count: int) -> list[str]:
        [buyer] = self.add_contacts(1)
        email = f"person{self._seeded}@example.com"
        ids = []
        for _ in range(count):
            at = self._start + self._next_time()
            order = self.state.add_order(
                total="25.00", customer_id=int(buyer), email=email, created_at=at, updated_at=at
            )
            ids.append(str(order.id))
        return ids

    def touch_contact(self, external_id: str) -> None:
        self.state.update_customer(int(external_id), first_name="Changed")

    def tags(self, external_id: str) -> frozenset[str]:
        return frozenset(self.state.customer_tags(int(external_id)))

    def add_foreign_tag(self, external_id: str, tag: str) -> None:
        tags = {*self.state.customer_tags(int(external_id)), tag}
        self.state.update_customer(int(external_id), tags=sorted(tags, key=str.lower))

    def fail_record(self, external_id: str) -> None:
        """Delete the customer: Shopify answers "Customer does not exist" for it alone."""
        with self.state.lock:
            del self.state.customers[int(external_id)]

    def limit_rate(self) -> RateLimitPlan:
        capacity, restore = 5 * PAGE_COST, 10 * PAGE_COST
        with self.state.lock:
            self.state.bucket = CostBucket(capacity, restore, self.state.clock.monotonic)
        return RateLimitPlan(
            settings={"bucket_size": capacity, "restore_rate": restore}, burst=5, per_second=10
        )

    def throttled_count(self) -> int:
        return self.state.throttled_responses
