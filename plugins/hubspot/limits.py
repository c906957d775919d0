"""HubSpot's rate limits as client-side pacing.

Three budgets apply (hubspot.md section 5):

- a daily budget shared by every app of the account (``X-HubSpot-RateLimit-Daily`` and
  ``-Daily-Remaining``, the latter absent for OAuth apps), resetting at midnight;
- a rolling burst window per app, 10 s by default (``X-HubSpot-RateLimit-Max``,
  ``-Remaining`` and ``-Interval-Milliseconds``);
- CRM search: 5 requests per second per account, separate from the burst window, with no
  rate-limit headers and 429s without ``Retry-After``.

``HubSpotLimiter`` routes each request to the right budgets: calls made inside
``search_lane()`` spend the search window and the daily budget, all others the burst
window and the daily budget.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx
from pydantic import ValidationError

from clm_hub.connectors import Composite, DailyBudget, SlidingWindow, WindowHeaders
from clm_hub.connectors.http import retry_after_header

from .settings import HubSpotSettings
from .vendor import RateLimitBody

__all__ = [
    "BURST_HEADERS",
    "DAILY_LIMIT_HEADER",
    "DAILY_REMAINING_HEADER",
    "INTERVAL_HEADER",
    "SEARCH_PENALTY_S",
    "HubSpotLimiter",
    "hubspot_retry_after",
    "rate_limit_policy",
]

DAILY_LIMIT_HEADER = "X-HubSpot-RateLimit-Daily"
DAILY_REMAINING_HEADER = "X-HubSpot-RateLimit-Daily-Remaining"
INTERVAL_HEADER = "X-HubSpot-RateLimit-Interval-Milliseconds"
BURST_HEADERS = WindowHeaders(
    remaining="X-HubSpot-RateLimit-Remaining", limit="X-HubSpot-RateLimit-Max"
)
SEARCH_PENALTY_S = 1.0
"""Search 429s carry no Retry-After; wait a second, as Airbyte's source-hubspot does."""


class HubSpotLimiter:
    """Paces requests against HubSpot's daily, burst and search budgets."""

    def __init__(self, *, daily: DailyBudget, burst: SlidingWindow, search: SlidingWindow) -> None:
        self.daily = daily
        self.burst = burst
        self.search = search
        self.general = Composite(daily, burst)
        self._searching: ContextVar[bool] = ContextVar(f"hubspot_search_{id(self)}", default=False)

    @classmethod
    def from_settings(cls, connector: str, settings: HubSpotSettings) -> HubSpotLimiter:
        """The limiter for one portal, from the connector's settings."""
        return cls(
            daily=DailyBudget(
                connector,
                settings.effective_daily_limit,
                headroom=settings.headroom,
                remaining_header=DAILY_REMAINING_HEADER,
                limit_header=DAILY_LIMIT_HEADER,
            ),
            burst=SlidingWindow(
                settings.effective_burst_limit,
                settings.burst_window_seconds,
                headroom=settings.burst_headroom,
                headers=BURST_HEADERS,
            ),
            search=SlidingWindow(settings.search_limit_per_second, 1.0),
        )

    @contextmanager
    def search_lane(self) -> Iterator[None]:
        """Requests sent inside this block (retries included) use the search budget."""
        token = self._searching.set(True)
        try:
            yield
        finally:
            self._searching.reset(token)

    async def acquire(self, cost: float = 1.0) -> None:
        if self._searching.get():
            await self.search.acquire(cost)
            await self.daily.acquire(cost)
        else:
            await self.general.acquire(cost)

    def observe(self, response: httpx.Response) -> None:
        self.general.observe(response)

    def penalise(self, retry_after: float | None) -> None:
        (self.search if self._searching.get() else self.burst).penalise(retry_after)


def rate_limit_policy(response: httpx.Response) -> str | None:
    """The ``policyName`` of a 429 body (``TEN_SECONDLY_ROLLING``, ``SECONDLY``, ``DAILY``)."""
    try:
        body: object = json.loads(response.content)
        return RateLimitBody.model_validate(body).policyName
    except (ValueError, ValidationError):
        return None


def hubspot_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429 (hubspot.md section 5: Retry-After is not dependable).

    ``Retry-After`` when sent; one second for search (``SECONDLY``); for the rolling burst
    window its length from ``X-HubSpot-RateLimit-Interval-Milliseconds``, after which every
    request we sent has left the window. ``None`` (exponential backoff) otherwise: a spent
    daily budget is caught by ``DailyBudget`` from the daily headers.
    """
    header = retry_after_header(response)
    if header is not None:
        return header
    policy = rate_limit_policy(response)
    if policy == "SECONDLY":
        return SEARCH_PENALTY_S
    if policy == "TEN_SECONDLY_ROLLING":
        interval = response.headers.get(INTERVAL_HEADER)
        if interval is not None and interval.isdigit():
            return int(interval) / 1000
    return None
