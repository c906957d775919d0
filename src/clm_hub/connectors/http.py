"""The HTTP client every connector uses: timeouts, one retry policy, pacing, redaction.

The hub builds one ``HttpClient`` per connector run from the connector's ``HttpOptions``
and hands it in; connectors never construct clients themselves, so tests swap the
transport (respx, an ASGI simulator) without patching anything.

Retries: timeouts, network errors, 5xx and 429 are retried with exponential backoff and
jitter; a 429's ``Retry-After`` (seconds or an HTTP date) is honoured and also holds the
rate limiter, so concurrent requests wait too. 401/403 and other 4xx are not retried.
Error messages carry the method and path, never the query string or a secret.
"""

from __future__ import annotations

import email.utils
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from clm_hub.connectors.ratelimit import Clock, RateLimiter, SystemClock, Unlimited, charge
from clm_hub.errors import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    UpstreamError,
)
from clm_hub.redaction import Redactor

__all__ = [
    "HttpClient",
    "HttpOptions",
    "HttpStats",
    "JsonValue",
    "RetryPolicy",
    "build_http_client",
    "retry_after_header",
]

T = TypeVar("T")
JsonValue = Any  # vendor JSON at the edge; connectors parse it into records at once
log = structlog.get_logger("clm_hub.http")


def retry_after_header(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header, given as seconds or as an HTTP date."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a retriable failure."""

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 60.0
    jitter: float = 0.5


@dataclass
class HttpStats:
    """Counters the run history records per connector stream."""

    api_calls: int = 0
    retries: int = 0
    throttled: int = 0

    def snapshot(self) -> HttpStats:
        return HttpStats(self.api_calls, self.retries, self.throttled)

    def since(self, before: HttpStats) -> HttpStats:
        """What was counted after ``before`` (a snapshot of these counters)."""
        return HttpStats(
            self.api_calls - before.api_calls,
            self.retries - before.retries,
            self.throttled - before.throttled,
        )


@dataclass(frozen=True)
class HttpOptions:
    """What a connector tells the hub about talking to its API."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    limiter: RateLimiter = field(default_factory=Unlimited)
    auth: httpx.Auth | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(30.0, connect=10.0))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_after: Callable[[httpx.Response], float | None] = retry_after_header
    """How to read the wait from a 429 (some tools put it in the body or another header)."""


def _path(request: httpx.Request) -> str:
    return f"{request.method} {request.url.path}"


class HttpClient:
    """An ``httpx.AsyncClient`` with pacing, retries, typed errors and counters."""

    def __init__(
        self,
        *,
        connector: str,
        client: httpx.AsyncClient,
        limiter: RateLimiter,
        redactor: Redactor,
        retry: RetryPolicy | None = None,
        retry_after: Callable[[httpx.Response], float | None] = retry_after_header,
        clock: Clock | None = None,
    ) -> None:
        self.connector = connector
        self.client = client
        self.limiter = limiter
        self.redactor = redactor
        self.retry = retry or RetryPolicy()
        self._retry_after = retry_after
        self._clock = clock or SystemClock()
        self.stats = HttpStats()

    def made_elsewhere(self, stats: HttpStats) -> None:
        """Count requests this connector's pull worker made: in the counters the run
        history reads, and against the rate limits this client's pushes must respect."""
        self.stats.api_calls += stats.api_calls
        self.stats.retries += stats.retries
        self.stats.throttled += stats.throttled
        charge(self.limiter, float(stats.api_calls))

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int | float | bool] | None = None,
        json: JsonValue = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
    ) -> httpx.Response:
        """Send a request and return its 2xx response, retrying what is worth retrying."""
        return await self.call(
            method,
            url,
            params=params,
            json=json,
            content=content,
            headers=headers,
            cost=cost,
            parse=lambda response: response,
        )

    async def json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int | float | bool] | None = None,
        json: JsonValue = None,
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
    ) -> JsonValue:
        """Send a request and return its parsed JSON body; a malformed body is retried."""
        return await self.call(
            method, url, params=params, json=json, headers=headers, cost=cost, parse=self.parse_json
        )

    def parse_json(self, response: httpx.Response) -> JsonValue:
        """Parse a body as JSON or raise ``MalformedResponse`` naming the request."""
        try:
            return json.loads(response.content) if response.content else None
        except ValueError as exc:
            raise MalformedResponse(
                self.connector,
                f"{_path(response.request)} answered {response.status_code} with a body "
                f"that is not JSON ({exc.__class__.__name__})",
                status_code=response.status_code,
            ) from None

    async def call(
        self,
        method: str,
        url: str,
        *,
        parse: Callable[[httpx.Response], T],
        params: Mapping[str, str | int | float | bool] | None = None,
        json: JsonValue = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
    ) -> T:
        """Send a request and hand the 2xx response to ``parse``, all inside the retry loop.

        ``parse`` may raise ``RateLimited`` or ``MalformedResponse`` for errors a tool
        reports in a 200 body (GraphQL ``THROTTLED``), and they are retried like a 429.
        """
        policy = self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, ConnectorError) and e.retriable),
            sleep=self._clock.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                response = await self._send_once(
                    method,
                    url,
                    params=params,
                    json=json,
                    content=content,
                    headers=headers,
                    cost=cost,
                )
                return parse(response)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int | float | bool] | None,
        json: JsonValue,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        cost: float,
    ) -> httpx.Response:
        await self.limiter.acquire(cost)
        self.stats.api_calls += 1
        try:
            response = await self.client.request(
                method, url, params=params, json=json, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise UpstreamError(
                self.connector, f"{method} {httpx.URL(url).path} timed out ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamError(
                self.connector,
                f"{method} {httpx.URL(url).path} failed: {self.redactor.text(str(exc))}",
            ) from None
        self.limiter.observe(response)
        self._raise_for_status(response)
        return response

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        where = _path(response.request)
        if status == 429:
            retry_after = self._retry_after(response)
            self.stats.throttled += 1
            self.limiter.penalise(retry_after)
            raise RateLimited(
                self.connector,
                f"{where} was rate limited (429); retry after {retry_after or 'backoff'} s",
                retry_after=retry_after,
            )
        if status in (401, 403):
            raise AuthError(
                self.connector,
                f"{where} was refused ({status}): the credentials are missing, expired or lack "
                f"a permission. Check this connector's token settings (`clm-hub check`). "
                f"{self._snippet(response)}",
                status_code=status,
            )
        if status >= 500:
            raise UpstreamError(
                self.connector,
                f"{where} failed with {status}. {self._snippet(response)}",
                status_code=status,
            )
        raise RequestRejected(
            self.connector,
            f"{where} was rejected ({status}). {self._snippet(response)}",
            status_code=status,
        )

    def _snippet(self, response: httpx.Response) -> str:
        text = response.text[:300].replace("\n", " ").strip()
        return self.redactor.text(text) if text else ""

    def _wait(self, state: RetryCallState) -> float:
        policy = self.retry
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, policy.max_wait)
        exponential = policy.initial_wait * 2 ** (state.attempt_number - 1)
        return float(min(policy.max_wait, exponential + random.uniform(0, policy.jitter)))

    async def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "http.retry",
            connector=self.connector,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            error=self.redactor.text(str(exc)),
        )


def build_http_client(
    *,
    connector: str,
    options: HttpOptions,
    redactor: Redactor,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> HttpClient:
    """Create the client a connector run uses; ``transport`` is the test seam."""
    client = httpx.AsyncClient(
        base_url=options.base_url,
        headers=dict(options.headers),
        auth=options.auth,
        timeout=options.timeout,
        transport=transport,
        follow_redirects=False,
    )
    return HttpClient(
        connector=connector,
        client=client,
        limiter=options.limiter,
        redactor=redactor,
        retry=options.retry,
        retry_after=options.retry_after,
        clock=clock,
    )
