"""The Typeform simulator as a harness for clm-hub's connector contract kit.

``TypeformHarness`` seeds one simulated account with one NPS form, adds responses behind
the connector's back and tells the kit how to reach it. Its rate limit is roomy until
``limit_rate`` drops it to Typeform's real 2 requests per second; its ``Retry-After`` is
a twentieth of a second, so a 429 fault costs little. The connector re-reads no overlap,
so an incremental pull returns only the boundary answer and what is new.

Typeform has no contacts: the kit's contact scenarios skip it, and ``add_contacts`` /
``touch_contact`` are never called. Survey scenarios use ``add_responses`` and
``add_response_now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from starlette.types import ASGIApp

from clm_hub.sandbox import FaultPlan
from clm_hub.testing import RateLimitPlan
from clm_hub_plugins import typeform as plugin

from .mapping import external_id
from .simstate import DEFAULT_TOKEN, TypeformState
from .simulator import create_app

__all__ = ["TypeformHarness"]

PAGE_SIZE = 10
ROOMY_PER_SECOND = 10_000
TYPEFORM_PER_SECOND = 2
FORM_ID = "NpsForm01"


class TypeformHarness:
    """One fresh simulated account for one contract scenario."""

    connector_name = "typeform"
    page_size = PAGE_SIZE

    def __init__(self) -> None:
        self.plugin: object = plugin
        self.faults = FaultPlan()
        self.state = TypeformState(requests_per_second=ROOMY_PER_SECOND, retry_after_s=0.05)
        self.form_id = self.state.add_form(FORM_ID)
        self._start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
        self._seeded = 0

    def app(self) -> ASGIApp:
        return create_app(self.state, self.faults)

    def connector_settings(self, base_url: str) -> Mapping[str, object]:
        return {
            "base_url": base_url,
            "token": DEFAULT_TOKEN,
            "forms": [self.form_id],
            "page_size": PAGE_SIZE,
            "requests_per_second": self.state.requests_per_second,
            "overlap_minutes": 0,
        }

    def _respond(self, at: datetime) -> str:
        self._seeded += 1
        n = self._seeded
        token = self.state.add_response(
            self.form_id,
            score=n % 11,
            email=f"person{n}@example.com",
            customer_id=f"C-{n}",
            submitted_at=at,
        )
        return external_id(self.form_id, token)

    def add_responses(self, count: int) -> list[str]:
        """``count`` answered responses from distinct people, a minute apart and at least a
        minute old; their external ids, oldest first."""
        return [
            self._respond(self._start + timedelta(minutes=self._seeded + 1)) for _ in range(count)
        ]

    def add_response_now(self) -> str:
        """A response submitted now, which an incremental pull must return."""
        return self._respond(datetime.now(UTC))

    def add_contacts(self, count: int) -> list[str]:
        raise NotImplementedError("Typeform has no contacts; the kit skips contact scenarios")

    def touch_contact(self, external_id: str) -> None:
        raise NotImplementedError("Typeform has no contacts; the kit skips contact scenarios")

    def limit_rate(self) -> RateLimitPlan:
        with self.state.lock:
            self.state.requests_per_second = TYPEFORM_PER_SECOND
        return RateLimitPlan(
            settings={"requests_per_second": TYPEFORM_PER_SECOND},
            burst=TYPEFORM_PER_SECOND,
            per_second=TYPEFORM_PER_SECOND,
        )

    def throttled_count(self) -> int:
        with self.state.lock:
            return sum(self.state.throttled.values())
