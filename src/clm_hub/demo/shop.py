"""A synthetic shop that behaves like a real one, deterministic for a seed.

Customers arrive over two years (more before the year-end peak). Each buys by a
buy-till-you-die process: purchases at a personal Poisson rate (gamma-distributed across
customers) and, after each purchase, a personal chance of never coming back
(beta-distributed), so BG/NBD fits on it are meaningful. Order values are gamma
distributed around a personal mean; some orders are refunded or cancelled. The same
person shows up in the CRM with a differently written email or phone, and some people are
only in the CRM (prospects).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

__all__ = ["Person", "Purchase", "people"]


@dataclass(frozen=True)
class Purchase:
    at: datetime
    total: Decimal
    status: str
    """``PAID``, ``REFUNDED`` or ``CANCELLED``."""


@dataclass
class Person:
    index: int
    email: str
    crm_email: str | None
    """How the CRM writes the same address (case, spaces), or None when not in the CRM."""
    phone: str | None
    crm_phone: str | None
    first_name: str
    joined: datetime
    purchases: list[Purchase] = field(default_factory=list)


FIRST_NAMES = ("Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ida", "Jon", "Kim",
               "Lea", "Max", "Nia", "Oskar", "Pia", "Rui", "Sara", "Tom", "Uma")  # fmt: skip


def _messy(email: str, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.3:
        return email.upper()
    if style < 0.6:
        return f"  {email.capitalize()} "
    return email


def people(count: int, *, seed: int, now: datetime | None = None) -> Iterator[Person]:
    """Generate ``count`` people one at a time (flat memory for any ``count``)."""
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    start = end - timedelta(days=730)
    for index in range(count):
        rng = random.Random(seed * 1_000_003 + index)
        offset = rng.random() * 730
        if rng.random() < 0.25:  # year-end campaigns bring more newcomers
            offset = 730 - (rng.random() * 45 + (365 if rng.random() < 0.5 else 0))
        joined = start + timedelta(days=max(0.0, offset))
        email = f"{FIRST_NAMES[index % len(FIRST_NAMES)].lower()}.{index}@example.com"
        digits = f"{5550000 + index:07d}"
        phone = f"+1 415 {digits[:3]} {digits[3:]}" if rng.random() < 0.4 else None
        prospect = rng.random() < 0.15
        in_crm = prospect or rng.random() < 0.6
        person = Person(
            index=index,
            email=email,
            crm_email=_messy(email, rng) if in_crm else None,
            phone=None if prospect else phone,
            crm_phone=f"(415) {digits[:3]}-{digits[3:]}" if in_crm and phone else None,
            first_name=FIRST_NAMES[index % len(FIRST_NAMES)],
            joined=joined,
        )
        if not prospect:
            person.purchases = list(_purchases(rng, joined, end))
        yield person


def _purchases(rng: random.Random, joined: datetime, end: datetime) -> Iterator[Purchase]:
    rate = rng.gammavariate(0.9, 1 / 25)  # purchases per day
    dropout = rng.betavariate(1.2, 3.5)
    mean_value = rng.gammavariate(6.0, 9.0)
    at = joined
    while at < end:
        total = Decimal(f"{max(5.0, rng.gammavariate(8.0, mean_value / 8.0)):.2f}")
        roll = rng.random()
        status = "REFUNDED" if roll < 0.04 else ("CANCELLED" if roll < 0.06 else "PAID")
        yield Purchase(at, total, status)
        if rng.random() < dropout:
            return
        gap = rng.expovariate(rate) if rate > 0 else 10_000
        at = at + timedelta(days=max(1.0, gap))
