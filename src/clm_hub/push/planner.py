"""The change set: what each tool record should show, minus what was last pushed there.

The scan streams over the connector's linked records, so planning a first push to a
million records holds one chunk in memory, not the plan. ``plan_push`` counts (for the
safety valve and ``--dry-run``); the executor runs the same scan again and sends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, select

from clm_hub.linking import customer_t, identity_t, push_t, state_t
from clm_hub.push.mapping import Desired, PushMapping, desired_state, owned
from clm_hub.records import PushChange

__all__ = ["PlannedChange", "PushPlan", "PushTarget", "plan_push", "scan_changes"]

SCAN_CHUNK = 2000


@dataclass(frozen=True)
class PushTarget:
    """How to write back to one connector."""

    connector: str
    mapping: PushMapping
    prefix: str
    use_tags: bool
    use_fields: bool


@dataclass(frozen=True)
class PlannedChange:
    """One record's change, with what it leads to and whether the record was tagged before."""

    customer_id: int
    change: PushChange
    desired: Desired
    digest: str
    previously_pushed: bool
    failed_attempts: int
    """Earlier failed attempts at this same change."""


@dataclass
class PushPlan:
    """Counts of a connector's change set, and a few examples for people to read."""

    connector: str
    changes: int = 0
    changes_to_tagged: int = 0
    unchanged: int = 0
    waiting: int = 0
    given_up: int = 0
    tagged_before: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    examples: list[PlannedChange] = field(default_factory=list)
    field_values: dict[str, set[str]] = field(default_factory=dict)
    """Every value the owned fields will take, so the tool's fields can accept them."""

    def change_share(self) -> float:
        """The share of already-tagged records this plan would change."""
        return self.changes_to_tagged / self.tagged_before if self.tagged_before else 0.0

    def held(self, max_share: float) -> bool:
        """A plan that rewrites too much of what is already there waits for a human.

        A connector's first push (nothing tagged yet) is never held.
        """
        return self.tagged_before > 0 and self.change_share() > max_share


def _digest(desired: Desired) -> str:
    payload = json.dumps([sorted(desired.tags), sorted(desired.fields.items())])
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def scan_changes(
    conn: Connection, target: PushTarget, now: datetime, counts: PushPlan | None = None
) -> Iterator[PlannedChange]:
    """Every record of the connector whose owned tags/fields must change, streamed."""
    i, s, p, c = identity_t.c, state_t.c, push_t.c, customer_t.c
    query = (
        select(
            i.external_id,
            i.customer_id,
            c.erased_at,
            s.stage,
            s.segments,
            s.nps_class,
            p.tags,
            p.fields,
            p.pushed_at,
            p.attempted_digest,
            p.next_attempt_at,
            p.gave_up_at,
            p.attempts,
        )
        .join(customer_t, c.id == i.customer_id)
        .join(state_t, s.customer_id == i.customer_id)
        .outerjoin(push_t, and_(p.connector == i.source, p.external_id == i.external_id))
        .where(
            i.source == target.connector,
            i.deleted_at.is_(None),
            ~i.external_id.startswith("guest:"),  # stand-ins for guest buyers, not tool records
        )
        .order_by(i.external_id)
    )
    rows = conn.execution_options(yield_per=SCAN_CHUNK).execute(query)
    for row in rows:
        desired = desired_state(
            stage=row.stage,
            segments=row.segments or [],
            nps_class=row.nps_class,
            mapping=target.mapping,
            prefix=target.prefix,
            use_tags=target.use_tags,
            use_fields=target.use_fields,
            erased=row.erased_at is not None,
        )
        pushed = row.pushed_at is not None
        if counts is not None and pushed:
            counts.tagged_before += 1
        last_tags = {t for t in (row.tags or []) if owned(t, target.prefix)}
        last_fields: dict[str, str | None] = dict(row.fields or {})
        add = desired.tags - last_tags
        remove = frozenset(last_tags - desired.tags)
        set_fields = {k: v for k, v in desired.fields.items() if last_fields.get(k) != v}
        set_fields.update({k: None for k in last_fields.keys() - desired.fields.keys()})
        if not (add or remove or set_fields):
            if counts is not None:
                counts.unchanged += 1
            continue
        digest = _digest(desired)
        same_attempt = row.attempted_digest == digest
        if same_attempt and row.gave_up_at is not None:
            if counts is not None:
                counts.given_up += 1
            continue
        if same_attempt and row.next_attempt_at is not None and row.next_attempt_at > now:
            if counts is not None:
                counts.waiting += 1
            continue
        yield PlannedChange(
            customer_id=row.customer_id,
            change=PushChange(
                external_id=row.external_id,
                add_tags=frozenset(add),
                remove_tags=remove,
                set_fields=set_fields,
            ),
            desired=desired,
            digest=digest,
            previously_pushed=pushed,
            failed_attempts=row.attempts if same_attempt else 0,
        )


def plan_push(
    conn: Connection, target: PushTarget, now: datetime, *, examples: int = 3
) -> PushPlan:
    """Count what a push would change, by kind, with a few examples."""
    plan = PushPlan(target.connector)
    for planned in scan_changes(conn, target, now, plan):
        plan.changes += 1
        plan.changes_to_tagged += planned.previously_pushed
        change = planned.change
        for tag in change.add_tags:
            kind = f"add {tag.split(':')[1]} tag"
            plan.by_kind[kind] = plan.by_kind.get(kind, 0) + 1
        for tag in change.remove_tags:
            kind = f"remove {tag.split(':')[1]} tag"
            plan.by_kind[kind] = plan.by_kind.get(kind, 0) + 1
        for name in change.set_fields:
            kind = f"set {name}"
            plan.by_kind[kind] = plan.by_kind.get(kind, 0) + 1
        for name, value in planned.desired.fields.items():
            if value:
                plan.field_values.setdefault(name, set()).update(value.split(";"))
        if len(plan.examples) < examples:
            plan.examples.append(planned)
    return plan
