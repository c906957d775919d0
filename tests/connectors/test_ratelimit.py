"""Rate-limit models, run on a virtual clock."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from clm_hub.connectors.ratelimit import (
    Composite,
    DailyBudget,
    SlidingWindow,
    TokenBucket,
    Unlimited,
    WindowHeaders,
    charge,
)
from clm_hub.errors import RateLimited
from clm_hub.testing import VirtualClock


async def test_sliding_window_lets_the_limit_through_without_waiting() -> None:
    clock = VirtualClock()
    window = SlidingWindow(10, 10.0, skew=0.0, clock=clock)
    for _ in range(10):
        await window.acquire()
    assert clock.slept == 0


async def test_sliding_window_waits_for_the_oldest_request_to_leave() -> None:
    clock = VirtualClock()
    window = SlidingWindow(10, 10.0, skew=0.0, clock=clock)
    for _ in range(10):
        await window.acquire()
        clock.advance(0.5)
    await window.acquire()
    assert clock.now == pytest.approx(10.0)  # the first request (t=0) left at t=10


async def test_sliding_window_rate_over_many_requests_matches_the_limit() -> None:
    clock = VirtualClock()
    window = SlidingWindow(100, 10.0, skew=0.0, clock=clock)
    for _ in range(1000):
        await window.acquire()
    # 1000 requests at 100 per 10 s: the last one goes at t=90 s.
    assert clock.now == pytest.approx(90.0)


async def test_headroom_leaves_a_share_for_other_apps() -> None:
    clock = VirtualClock()
    window = SlidingWindow(100, 10.0, headroom=0.2, skew=0.0, clock=clock)
    assert window.allowance == 80
    for _ in range(80):
        await window.acquire()
    assert clock.slept == 0
    await window.acquire()
    assert clock.slept == pytest.approx(10.0)


async def test_window_limit_header_replaces_the_configured_limit() -> None:
    window = SlidingWindow(100, 10.0, headers=WindowHeaders(remaining="R", limit="L"))
    window.observe(httpx.Response(200, headers={"L": "190", "R": "150"}))
    assert window.limit == 190


async def test_concurrent_acquires_never_exceed_the_window() -> None:
    clock = VirtualClock()
    window = SlidingWindow(5, 1.0, skew=0.0, clock=clock)
    stamps: list[float] = []

    async def one() -> None:
        await window.acquire()
        stamps.append(clock.now)

    await asyncio.gather(*(one() for _ in range(20)))
    for t in stamps:
        assert sum(1 for s in stamps if t <= s < t + 1.0) <= 5


async def test_token_bucket_charges_cost_and_refills() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(1000, 50, clock=clock)
    await bucket.acquire(900)
    assert clock.slept == 0
    await bucket.acquire(200)  # 100 left, 100 missing at 50/s
    assert clock.slept == pytest.approx(2.0)


async def test_token_bucket_adopts_the_reported_state() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(1000, 50, clock=clock)
    bucket.sync(available=100, capacity=2000, refill_rate=100)
    assert bucket.capacity == 2000
    await bucket.acquire(300)
    assert clock.slept == pytest.approx(2.0)


async def test_token_bucket_keeps_its_reserve() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(1000, 100, headroom=0.1, clock=clock)
    await bucket.acquire(900)
    assert clock.slept == 0
    await bucket.acquire(100)
    assert clock.slept == pytest.approx(1.0)


async def test_daily_budget_raises_instead_of_sleeping_until_midnight() -> None:
    clock = VirtualClock()
    budget = DailyBudget("hub", 3, clock=clock)
    for _ in range(3):
        await budget.acquire()
    with pytest.raises(RateLimited, match="daily API budget used up") as info:
        await budget.acquire()
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert clock.slept == 0


async def test_daily_budget_resets_the_next_day() -> None:
    clock = VirtualClock()
    budget = DailyBudget("hub", 1, clock=clock)
    await budget.acquire()
    clock.advance(86_400)
    await budget.acquire()


async def test_daily_budget_learns_what_other_apps_spent() -> None:
    budget = DailyBudget("hub", 1000, remaining_header="X-Daily-Remaining")
    budget.observe(httpx.Response(200, headers={"X-Daily-Remaining": "0"}))
    with pytest.raises(RateLimited):
        await budget.acquire()


async def test_composite_applies_every_limit() -> None:
    clock = VirtualClock()
    limiter = Composite(
        DailyBudget("hub", 1000, clock=clock), SlidingWindow(2, 1.0, skew=0.0, clock=clock)
    )
    for _ in range(3):
        await limiter.acquire()
    assert clock.slept == pytest.approx(1.0)


async def test_skew_widens_the_window_so_arrival_delays_never_overrun_the_tool() -> None:
    clock = VirtualClock()
    window = SlidingWindow(2, 1.0, skew=0.1, clock=clock)
    for _ in range(3):
        await window.acquire()
    assert clock.now == pytest.approx(1.1)


async def test_rolling_window_counts_other_apps_requests_from_the_remaining_header() -> None:
    clock = VirtualClock()
    window = SlidingWindow(10, 10.0, skew=0.0, headers=WindowHeaders(remaining="R"), clock=clock)
    await window.acquire()
    window.observe(httpx.Response(200, headers={"R": "4"}))  # we sent 1, the tool counted 6
    for _ in range(4):
        await window.acquire()
    assert clock.slept == 0
    await window.acquire()  # the 11th in the window waits for the oldest to leave
    assert clock.now == pytest.approx(10.0)


async def test_our_own_requests_spending_a_rolling_window_cause_no_extra_wait() -> None:
    clock = VirtualClock()
    window = SlidingWindow(3, 10.0, skew=0.0, headers=WindowHeaders(remaining="R"), clock=clock)
    for remaining in ("2", "1", "0"):
        await window.acquire()
        clock.advance(1.0)
        window.observe(httpx.Response(200, headers={"R": remaining}))
    await window.acquire()
    assert clock.now == pytest.approx(11.0)  # when the first request, answered at 1 s, leaves


async def test_token_bucket_never_spins_on_a_rounding_deficit() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(1000, 50, clock=clock)
    for _ in range(200):  # costs that do not add up exactly in binary floating point
        await bucket.acquire(0.1 * 7)
    clock.advance(0.3)
    await asyncio.wait_for(bucket.acquire(1000 - 1e-13), timeout=1)


async def test_requests_a_pull_worker_made_count_against_every_limit() -> None:
    """The hub's client of a connector is charged for its worker's calls (``charge``), so
    pushes after a pull in another process share the pull's windows and budget."""
    clock = VirtualClock()
    budget = DailyBudget("hub", 5, clock=clock)
    window = SlidingWindow(4, 10.0, skew=0.0, clock=clock)
    bucket = TokenBucket(10, 1.0, clock=clock)
    charge(Composite(budget, window, bucket), 4)
    charge(Unlimited(), 4)
    charge(object(), 4)  # type: ignore[arg-type]  # a plugin's limiter without ``spent``
    await budget.acquire()
    with pytest.raises(RateLimited, match="daily API budget used up"):
        await budget.acquire()
    await window.acquire()
    assert clock.slept == pytest.approx(10.0)  # the worker's four calls filled the window
    assert bucket.available == pytest.approx(10.0)  # refilled meanwhile (6 + 10 s x 1/s)
