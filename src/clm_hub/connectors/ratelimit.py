"""Client-side pacing that follows each tool's own rate-limit model.

Connectors declare their API's model with one of these limiters (or several combined);
the HTTP client asks the limiter before every request and shows it every response, so the
hub uses the allowance fully without running into 429s:

- ``SlidingWindow``: N requests (or cost units) per rolling window (HubSpot 10-second burst,
  Omnisend per minute, Typeform per second).
- ``TokenBucket``: a bucket of points that refills at a steady rate (Shopify's leaky bucket of
  GraphQL cost points, Shopify REST calls).
- ``DailyBudget``: a large allowance shared by every app on the account (HubSpot daily,
  Pipedrive tokens); exhausting it raises instead of sleeping for hours.
- ``Composite``: all of the above at once.

``headroom`` keeps a share of each allowance free for the other apps that share the account.
Limiters read the clock through a ``Clock`` so tests run them without real waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx

from clm_hub.errors import BudgetExhausted

__all__ = [
    "Clock",
    "Composite",
    "DailyBudget",
    "RateLimiter",
    "SlidingWindow",
    "SystemClock",
    "TokenBucket",
    "Unlimited",
    "WindowHeaders",
    "charge",
]


class Clock(Protocol):
    """Time source for limiters and retries; tests substitute a virtual clock."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back."""
        ...

    def utcnow(self) -> datetime:
        """The wall-clock time in UTC (daily budgets reset on it)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class RateLimiter(Protocol):
    """What the HTTP client needs from a rate-limit model."""

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until a request of ``cost`` units may be sent, and account for it."""
        ...

    def observe(self, response: httpx.Response) -> None:
        """Learn the tool's view of the budget from a response's headers."""
        ...

    def penalise(self, retry_after: float | None) -> None:
        """A 429 arrived: hold every request for ``retry_after`` seconds (or a safe default)."""
        ...


def charge(limiter: RateLimiter, cost: float) -> None:
    """Count ``cost`` units sent by another process of the same connector (its pull
    worker) as if sent now, so that pulls and pushes share one budget. Limiters of
    plugins that cannot (no ``spent`` method) learn it from the tool's headers instead."""
    spent = getattr(limiter, "spent", None)
    if spent is not None and cost > 0:
        spent(cost)


class Unlimited:
    """No client-side pacing (for tools without a documented limit, and for tests)."""

    async def acquire(self, cost: float = 1.0) -> None:
        return None

    def observe(self, response: httpx.Response) -> None:
        return None

    def penalise(self, retry_after: float | None) -> None:
        return None

    def spent(self, cost: float) -> None:
        return None


@dataclass(frozen=True)
class WindowHeaders:
    """Names of a tool's rate-limit headers; ``reset_scale`` turns the reset value into seconds."""

    remaining: str
    limit: str | None = None
    reset: str | None = None
    reset_scale: float = 1.0


def _header_float(headers: Mapping[str, str], name: str | None) -> float | None:
    if name is None:
        return None
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.split(",")[0].strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _effective(limit: float, headroom: float) -> float:
    return max(1.0, math.floor(limit * (1.0 - headroom)))


class _Hold:
    """A shared 'nobody sends before T' gate, set by 429s and exhausted-budget headers."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.until = 0.0

    def extend(self, seconds: float) -> None:
        self.until = max(self.until, self._clock.monotonic() + seconds)

    async def wait(self) -> None:
        delay = self.until - self._clock.monotonic()
        if delay > 0:
            await self._clock.sleep(delay)


DEFAULT_PENALTY_S = 1.0
_EPSILON = 1e-9
_MIN_WAIT = 1e-6


class SlidingWindow:
    """At most ``limit`` cost units in any rolling ``window`` seconds.

    A request counts from when it is sent until its response arrives, and then from the
    response on: the tool stamped it somewhere in between, so our window never frees a
    slot before the tool's does, however long the request took. The tool's headers,
    when named, correct the count: requests the tool counted that we did not send (other
    apps on the account) are counted too, a fixed window with a reset time holds requests
    until the reset when spent, and a ``limit`` header replaces the configured limit
    (plans differ; don't hard-code).
    """

    def __init__(
        self,
        limit: float,
        window: float,
        *,
        headroom: float = 0.0,
        headers: WindowHeaders | None = None,
        skew: float = 0.05,
        clock: Clock | None = None,
    ) -> None:
        """``skew`` widens the window by that many seconds: the tool counts a request when
        it arrives, a little after we send it, so a window exactly as wide as the tool's
        would now and then put one request too many into the tool's window."""
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        if not 0.0 <= headroom < 1.0:
            raise ValueError("headroom is a share between 0 and 1")
        self.limit = limit
        self.window = window + max(0.0, skew)
        self.headroom = headroom
        self._headers = headers
        self._clock = clock or SystemClock()
        self._sent: deque[list[float]] = deque()  # [stamp, cost], oldest first
        self._pending: deque[list[float]] = deque()  # sent, no response seen yet
        self._used = 0.0
        self._lock = asyncio.Lock()
        self._hold = _Hold(self._clock)

    @property
    def allowance(self) -> float:
        """Cost units this client may spend per window after headroom."""
        return _effective(self.limit, self.headroom)

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - self.window:
            entry = self._sent.popleft()
            self._used -= entry[1]
        while self._pending and self._pending[0][0] <= now - self.window:
            self._pending.popleft()  # no response ever came (network error)

    def _answered(self, now: float) -> None:
        """Re-stamp the oldest unanswered request at its response time."""
        if not self._pending:
            return
        entry = self._pending.popleft()
        for index, candidate in enumerate(self._sent):
            if candidate is entry:  # by identity: equal [stamp, cost] pairs are common
                del self._sent[index]
                entry[0] = now
                self._sent.append(entry)
                return

    async def acquire(self, cost: float = 1.0) -> None:
        cost = min(cost, self.allowance)
        async with self._lock:
            while True:
                await self._hold.wait()
                now = self._clock.monotonic()
                self._expire(now)
                if self._used + cost <= self.allowance:
                    entry = [now, cost]
                    self._sent.append(entry)
                    self._pending.append(entry)
                    self._used += cost
                    return
                oldest = self._sent[0][0]
                await self._clock.sleep(oldest + self.window - now)

    def observe(self, response: httpx.Response) -> None:
        now = self._clock.monotonic()
        self._answered(now)
        if self._headers is None:
            return
        limit = _header_float(response.headers, self._headers.limit)
        if limit is not None and limit > 0:
            self.limit = limit
        remaining = _header_float(response.headers, self._headers.remaining)
        if remaining is None:
            return
        reset = _header_float(response.headers, self._headers.reset)
        if reset is not None:
            # A fixed window with a known reset: when it is spent, wait for the reset.
            if remaining <= self.limit - self.allowance:
                self._hold.extend(max(0.0, reset * self._headers.reset_scale))
            return
        # A rolling window without a reset time: requests the tool counted that we did not
        # send were other apps'. Count them too, so they leave our window when theirs do.
        self._expire(now)
        others = (self.limit - remaining) - self._used
        if others >= 1:
            self._sent.append([now, others])
            self._used += others

    def penalise(self, retry_after: float | None) -> None:
        self._hold.extend(DEFAULT_PENALTY_S if retry_after is None else retry_after)

    def spent(self, cost: float) -> None:
        """Requests sent elsewhere (see ``charge``): in the window from now."""
        now = self._clock.monotonic()
        self._expire(now)
        self._sent.append([now, cost])
        self._used += cost


class TokenBucket:
    """A bucket of ``capacity`` points refilled at ``refill_rate`` points per second.

    Shopify's GraphQL cost model is this bucket; its responses report the true state
    (``throttleStatus``), which the connector passes to ``sync`` after each call.
    """

    def __init__(
        self,
        capacity: float,
        refill_rate: float,
        *,
        headroom: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        if capacity <= 0 or refill_rate <= 0:
            raise ValueError("capacity and refill_rate must be positive")
        if not 0.0 <= headroom < 1.0:
            raise ValueError("headroom is a share between 0 and 1")
        self.capacity = capacity
        self.refill_rate = refill_rate
        self.headroom = headroom
        self._clock = clock or SystemClock()
        self._available = capacity
        self._stamp = self._clock.monotonic()
        self._lock = asyncio.Lock()
        self._hold = _Hold(self._clock)

    @property
    def reserve(self) -> float:
        """Points always left in the bucket for other apps."""
        return self.capacity * self.headroom

    @property
    def available(self) -> float:
        """Points in the bucket now, by the local model."""
        self._refill()
        return self._available

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._available = min(
            self.capacity, self._available + (now - self._stamp) * self.refill_rate
        )
        self._stamp = now

    async def acquire(self, cost: float = 1.0) -> None:
        cost = min(cost, self.capacity - self.reserve)
        async with self._lock:
            while True:
                await self._hold.wait()
                self._refill()
                # A tolerance: float refills can leave a deficit of 1e-15 points, whose
                # wait is too short to move any clock.
                if self._available - cost >= self.reserve - _EPSILON:
                    self._available = max(0.0, self._available - cost)
                    return
                missing = cost + self.reserve - self._available
                await self._clock.sleep(max(missing / self.refill_rate, _MIN_WAIT))

    def sync(
        self, *, available: float, capacity: float | None = None, refill_rate: float | None = None
    ) -> None:
        """Adopt the tool's reported bucket state (it knows what other apps spent)."""
        if capacity is not None and capacity > 0:
            self.capacity = capacity
        if refill_rate is not None and refill_rate > 0:
            self.refill_rate = refill_rate
        self._available = max(0.0, min(self.capacity, available))
        self._stamp = self._clock.monotonic()

    def spent(self, cost: float) -> None:
        """Points spent elsewhere (see ``charge``); the tool's next report corrects them."""
        self._refill()
        self._available = max(0.0, self._available - cost)

    def refund(self, points: float) -> None:
        """Give back points charged up front beyond the actual cost of a call."""
        self._refill()
        self._available = min(self.capacity, self._available + max(0.0, points))

    def observe(self, response: httpx.Response) -> None:
        return None

    def penalise(self, retry_after: float | None) -> None:
        self._hold.extend(DEFAULT_PENALTY_S if retry_after is None else retry_after)


class DailyBudget:
    """A per-day allowance shared by all apps of an account; never waits, raises when spent.

    Sleeping until midnight would stall every other connector, so an exhausted budget is an
    error the runner reports (and alerts on) instead.
    """

    def __init__(
        self,
        connector: str,
        limit: float,
        *,
        headroom: float = 0.0,
        remaining_header: str | None = None,
        limit_header: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.connector = connector
        self.limit = limit
        self.headroom = headroom
        self._remaining_header = remaining_header
        self._limit_header = limit_header
        self._clock = clock or SystemClock()
        self._day = self._clock.utcnow().date()
        self.used = 0.0

    def _roll(self) -> None:
        today = self._clock.utcnow().date()
        if today != self._day:
            self._day = today
            self.used = 0.0

    async def acquire(self, cost: float = 1.0) -> None:
        self._roll()
        if self.used + cost > _effective(self.limit, self.headroom):
            now = self._clock.utcnow()
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            raise BudgetExhausted(
                self.connector,
                f"daily API budget used up ({self.used:.0f} of {self.limit:.0f}, "
                f"headroom {self.headroom:.0%}); it resets at {midnight:%Y-%m-%d %H:%M} UTC",
                retry_after=(midnight - now).total_seconds(),
                status_code=None,
            )
        self.used += cost

    def observe(self, response: httpx.Response) -> None:
        limit = _header_float(response.headers, self._limit_header)
        if limit is not None and limit > 0:
            self.limit = limit
        remaining = _header_float(response.headers, self._remaining_header)
        if remaining is not None:
            self._roll()
            self.used = max(self.used, self.limit - remaining)

    def penalise(self, retry_after: float | None) -> None:
        return None

    def spent(self, cost: float) -> None:
        """Calls made elsewhere (see ``charge``) use up today's allowance too."""
        self._roll()
        self.used += cost


class Composite:
    """Several limits at once (e.g. a 10-second burst and a daily budget)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    async def acquire(self, cost: float = 1.0) -> None:
        for limiter in self.limiters:
            await limiter.acquire(cost)

    def observe(self, response: httpx.Response) -> None:
        for limiter in self.limiters:
            limiter.observe(response)

    def penalise(self, retry_after: float | None) -> None:
        for limiter in self.limiters:
            limiter.penalise(retry_after)

    def spent(self, cost: float) -> None:
        for limiter in self.limiters:
            charge(limiter, cost)
