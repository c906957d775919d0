"""Sending GraphQL documents to one shop: token auth, query-cost pacing, typed errors.

Pacing follows Shopify's calculated-query-cost leaky bucket: every call is charged its
requested cost up front on the client's ``TokenBucket``, which is then set to the
``throttleStatus`` Shopify reports. That figure already includes Shopify's refund of
requested minus actual cost, so refunding locally as well would count it twice; the local
refund is only used when an answer carries a cost without a throttle status.

Errors: a ``THROTTLED`` error arrives as HTTP 200, so it becomes ``RateLimited`` inside the
response parser, where the HTTP client's retry loop sees it. ``ACCESS_DENIED`` (a missing
scope) is an ``AuthError``; other top-level errors are ``RequestRejected`` (or
``UpstreamError`` for Shopify's internal errors). Errors tied to one field (``path``) are
handed back with the data, for per-record outcomes.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass

import httpx
from pydantic import ValidationError
from structlog.typing import FilteringBoundLogger

from clm_hub.connectors import HttpClient, TokenBucket
from clm_hub.errors import (
    AuthError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    UpstreamError,
)

from .documents import MAX_QUERY_COST, Document
from .settings import ShopifySettings
from .vendor import CostExtension, GraphQLEnvelope, GraphQLError

__all__ = [
    "RETRY_CODES",
    "Answer",
    "GraphQLTransport",
    "ShopifyAccessToken",
    "api_base_url",
]

RETRY_CODES = frozenset({"INTERNAL_SERVER_ERROR", "THROTTLED", "TIMEOUT"})
"""Error codes that mean "try again later", not "this request is wrong"."""


def api_base_url(settings: ShopifySettings) -> str:
    """``https://{shop}/admin/api/{version}``, or the same path under ``base_url``."""
    origin = (settings.base_url or f"https://{settings.shop_domain}").rstrip("/")
    return f"{origin}/admin/api/{settings.api_version}"


class ShopifyAccessToken(httpx.Auth):
    """Adds ``X-Shopify-Access-Token`` to requests for the shop's Admin API, and only those.

    Bulk results are downloaded from a signed storage URL on another host; the token must
    never travel there, so it is not a default header of the client.
    """

    def __init__(self, token: str, api_base: str) -> None:
        self._token = token
        base = httpx.URL(api_base)
        self._origin = (base.scheme, base.host, base.port)
        self._prefix = base.path.rstrip("/") + "/"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        if (url.scheme, url.host, url.port) == self._origin and url.path.startswith(self._prefix):
            request.headers["X-Shopify-Access-Token"] = self._token
        yield request


@dataclass(frozen=True)
class Answer:
    """A GraphQL answer whose envelope passed the checks; ``errors`` are per-field ones."""

    data: Mapping[str, object]
    errors: Sequence[GraphQLError]
    requested_cost: float | None = None


class GraphQLTransport:
    """POSTs documents to ``graphql.json`` through the hub's ``HttpClient``."""

    def __init__(
        self,
        http: HttpClient,
        settings: ShopifySettings,
        connector_id: str,
        log: FilteringBoundLogger,
    ) -> None:
        self.http = http
        self.settings = settings
        self.connector_id = connector_id
        self.log = log
        self._in_flight = 0.0
        self._version_warned = False

    @property
    def bucket(self) -> TokenBucket | None:
        """The query-cost bucket, when the client paces with one."""
        limiter = self.http.limiter
        return limiter if isinstance(limiter, TokenBucket) else None

    def budget(self) -> float:
        """Cost points one request may ask for: Shopify's maximum, within our share."""
        bucket = self.bucket
        if bucket is None:
            return float(MAX_QUERY_COST)
        return min(float(MAX_QUERY_COST), bucket.capacity - bucket.reserve)

    async def execute(
        self, document: Document, variables: Mapping[str, object], *, cost: float | None = None
    ) -> Answer:
        """POST one document; return its data, raising typed errors for what went wrong."""
        charged = document.cost if cost is None else cost
        self._in_flight += charged
        try:
            return await self.http.call(
                "POST",
                "graphql.json",
                json={"query": document.text, "variables": dict(variables)},
                cost=charged,
                parse=lambda response: self._parse(response, document, charged),
            )
        except AuthError as exc:
            if exc.status_code not in (401, 403):
                raise
            raise AuthError(
                self.connector_id,
                f"Shopify refused the access token for {self.settings.shop_domain} "
                f"({exc.status_code}): it is wrong, revoked or expired. Create an Admin API "
                "access token in the shop's custom app (scopes read_customers, write_customers, "
                "read_orders) and set access_token or access_token_file for this connector.",
                status_code=exc.status_code,
            ) from None
        finally:
            self._in_flight -= charged

    def require_clean(self, answer: Answer, document: Document) -> None:
        """Raise for field errors where a query has no use for partial data."""
        if not answer.errors:
            return
        detail = "; ".join(e.message for e in answer.errors)
        if any(e.code in RETRY_CODES for e in answer.errors):
            raise UpstreamError(self.connector_id, f"{document.name} failed: {detail}")
        raise RequestRejected(self.connector_id, f"{document.name} failed: {detail}")

    def _parse(self, response: httpx.Response, document: Document, charged: float) -> Answer:
        body = self.http.parse_json(response)
        try:
            envelope = GraphQLEnvelope.model_validate(body)
        except ValidationError:
            raise MalformedResponse(
                self.connector_id,
                f"{document.name}: the answer is not a GraphQL response",
                status_code=response.status_code,
            ) from None
        self._check_version(response)
        cost = envelope.extensions.cost if envelope.extensions else None
        self._account(cost, charged)
        errors = envelope.error_list
        if any(e.code == "THROTTLED" for e in errors):
            self.http.stats.throttled += 1
            wait = self._throttle_wait(cost, charged)
            raise RateLimited(
                self.connector_id,
                f"{document.name} was throttled by Shopify's query-cost limit; "
                f"retrying in {'backoff' if wait is None else round(wait, 2)} s",
                retry_after=wait,
                status_code=200,
            )
        for error in errors:
            if error.code == "ACCESS_DENIED":
                raise AuthError(
                    self.connector_id,
                    f"Shopify denied {document.name}: {error.message} Add the missing access "
                    "scope to the custom app, reinstall it, and set the new token.",
                )
        if envelope.extensions and envelope.extensions.search:
            self.log.warning("shopify.search_warning", document=document.name)
        unplaced = [e for e in errors if not e.path]
        if envelope.data is None or unplaced:
            detail = "; ".join(e.message for e in errors) or "no data and no errors"
            if any(e.code in RETRY_CODES for e in errors):
                raise UpstreamError(self.connector_id, f"{document.name} failed: {detail}")
            raise RequestRejected(
                self.connector_id, f"{document.name} was rejected: {detail}", status_code=200
            )
        return Answer(
            data=envelope.data,
            errors=[e for e in errors if e.path],
            requested_cost=cost.requested_query_cost if cost else None,
        )

    def _account(self, cost: CostExtension | None, charged: float) -> None:
        bucket = self.bucket
        if bucket is None or cost is None:
            return
        status = cost.throttle_status
        if status is not None:
            # Calls still in flight were charged locally but may not have reached Shopify
            # yet, so they stay charged.
            others = max(0.0, self._in_flight - charged)
            bucket.sync(
                available=status.currently_available - others,
                capacity=status.maximum_available,
                refill_rate=status.restore_rate,
            )
        elif cost.actual_query_cost is not None:
            bucket.refund(charged - cost.actual_query_cost)

    def _throttle_wait(self, cost: CostExtension | None, charged: float) -> float | None:
        """Documented: (requested - currentlyAvailable) / restoreRate, plus our headroom."""
        status = cost.throttle_status if cost else None
        if status is None or status.restore_rate <= 0:
            return None
        # The retry is charged our own estimate again, so wait for whichever is larger.
        requested = max((cost.requested_query_cost if cost else None) or 0.0, charged)
        reserve = self.bucket.reserve if self.bucket else 0.0
        return max(0.0, (requested + reserve - status.currently_available) / status.restore_rate)

    def _check_version(self, response: httpx.Response) -> None:
        served = response.headers.get("X-Shopify-API-Version")
        if served and served != self.settings.api_version and not self._version_warned:
            self._version_warned = True
            self.log.warning(
                "shopify.api_version_fell_forward",
                requested=self.settings.api_version,
                served=served,
            )
