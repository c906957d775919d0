"""The connector SDK: what a plugin author imports.

``Connector`` and ``ConnectorSettings`` (base.py), the HTTP client with retries, pacing and
redaction (http.py), rate-limit models (ratelimit.py) and pagination (pagination.py).
"""

from clm_hub.connectors.base import (
    Capability,
    Connector,
    ConnectorSettings,
    RegisterConnector,
    WebhookEvent,
    WebhookRequest,
)
from clm_hub.connectors.http import HttpClient, HttpOptions, HttpStats, RetryPolicy
from clm_hub.connectors.pagination import Fetched, paginate
from clm_hub.connectors.ratelimit import (
    Clock,
    Composite,
    DailyBudget,
    RateLimiter,
    SlidingWindow,
    SystemClock,
    TokenBucket,
    Unlimited,
    WindowHeaders,
)

__all__ = [
    "Capability",
    "Clock",
    "Composite",
    "Connector",
    "ConnectorSettings",
    "DailyBudget",
    "Fetched",
    "HttpClient",
    "HttpOptions",
    "HttpStats",
    "RateLimiter",
    "RegisterConnector",
    "RetryPolicy",
    "SlidingWindow",
    "SystemClock",
    "TokenBucket",
    "Unlimited",
    "WebhookEvent",
    "WebhookRequest",
    "WindowHeaders",
    "paginate",
]
