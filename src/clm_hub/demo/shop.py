"""A synthetic shop that behaves like a real one, deterministic for a seed.

Customers arrive over two years (more before the year-end peak). Each buys by a
buy-till-you-die process: purchases at a personal Poisson rate (gamma-distributed across
customers) and, after each purchase, a personal chance of never coming back
(beta-distributed), so BG/NBD fits on it are meaningful. Order values are gamma
distributed around a personal mean; some orders are refunded or cancelled. The same
person shows up in the CRM with a differently written email or phone, and some people are
only in the CRM (prospects). Some people answer NPS surveys, and their scores follow their
behaviour: frequent buyers lean to promoters, refunders and lapsed buyers to detractors.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

__all__ = ["NpsAnswer", "Person", "Purchase", "people"]


@dataclass(frozen=True)
class Purchase:
    at: datetime
    total: Decimal
    status: str
    """``PAID``, ``REFUNDED`` or ``CANCELLED``."""


@dataclass(frozen=True)
class NpsAnswer:
    """One answer to "how likely are you to recommend us?" (0-10)."""

    score: int
    at: datetime


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
    nps: list[NpsAnswer] = field(default_factory=list)
    """Survey answers, oldest first (not seeded into any simulator yet)."""


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
        # A stream of its own, so answers never change anybody's purchases.
        person.nps = _nps(random.Random(seed * 1_000_003 + index + _NPS_STREAM), person, end)
        yield person


_NPS_STREAM = 7_919_000_003
LAPSED_AFTER = timedelta(days=180)


def _nps(rng: random.Random, person: Person, end: datetime) -> list[NpsAnswer]:
    """Zero to three answers whose scores lean with the person's behaviour."""
    paid = [p for p in person.purchases if p.status == "PAID"]
    refunded = any(p.status == "REFUNDED" for p in person.purchases)
    if rng.random() >= (0.35 if paid else 0.05):  # buyers answer surveys far more often
        return []
    lean = 0.0
    if len(paid) >= 4:
        lean += 2.0
    if refunded:
        lean -= 3.0
    if paid and end - paid[-1].at > LAPSED_AFTER:
        lean -= 1.5
    answers: list[NpsAnswer] = []
    first = paid[0].at if paid else person.joined
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        at = first + (end - first) * rng.random()
        score = round(rng.gauss(7.8 + lean, 1.8))
        answers.append(NpsAnswer(min(10, max(0, score)), at.replace(microsecond=0)))
    return sorted(answers, key=lambda answer: answer.at)


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
        gap = rng.expovariate(rate) if rate > 0 else 10_000.0
        # A near-zero rate draws gaps past any calendar; any gap beyond the window ends it.
        at = at + timedelta(days=min(max(1.0, gap), 10_000.0))
