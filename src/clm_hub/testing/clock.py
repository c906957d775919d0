"""A clock whose sleeps return at once and advance virtual time, for pacing tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

__all__ = ["VirtualClock"]


class VirtualClock:
    """Implements ``clm_hub.connectors.Clock``; records every sleep it was asked for."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def utcnow(self) -> datetime:
        return self._start + timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would

    def advance(self, seconds: float) -> None:
        """Let time pass without anybody sleeping."""
        self.now += seconds

    @property
    def slept(self) -> float:
        """Total virtual seconds slept."""
        return sum(self.sleeps)
