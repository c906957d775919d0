"""Forgetting a person: their personal data leaves the store, a tombstone stays.

The customer row and their orders stay (without personal data) so that aggregates and
revenue remain right; emails, phones and names are cleared everywhere they were copied,
and hashed tombstones of every identifier keep stale data from any tool (a late page,
an old webhook) from re-creating the person. Tools that can erase are asked to as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from clm_hub.connectors.base import Capability
from clm_hub.errors import ClmHubError
from clm_hub.identity import normalise_email
from clm_hub.linking import (
    chunks,
    customer_t,
    identity_t,
    order_t,
    response_t,
    tombstone_hash,
    tombstone_t,
)
from clm_hub.plugins import PluginRegistry
from clm_hub.records import PushStatus
from clm_hub.runtime import build_redactor, configure_connectors, open_connector
from clm_hub.settings import HubSettings
from clm_hub.store.tables import RejectedRecord

__all__ = ["Erasure", "erase_in_tools", "erase_person"]

rejected_t = RejectedRecord.__table__  # type: ignore[attr-defined]


@dataclass
class Erasure:
    """What was forgotten: the customers, and each tool's records to erase there too."""

    email: str
    customer_ids: list[int] = field(default_factory=list)
    identities: dict[str, list[str]] = field(default_factory=dict)
    """Connector id → the tool's external ids of this person."""


def erase_person(engine: Engine, email: str, *, now: datetime) -> Erasure:
    """Erase everything personal the store holds about the person with ``email``."""
    normalised = normalise_email(email)
    if normalised is None:
        raise ValueError(f"{email!r} is not an email address")
    erasure = Erasure(normalised)
    with engine.begin() as conn:
        ids = set(
            conn.execute(
                select(identity_t.c.customer_id).where(
                    identity_t.c.email == normalised, identity_t.c.customer_id.is_not(None)
                )
            ).scalars()
        )
        ids |= set(
            conn.execute(select(customer_t.c.id).where(customer_t.c.email == normalised)).scalars()
        )
        erasure.customer_ids = sorted(ids)
        keys: set[tuple[str, str]] = {("email", tombstone_hash(normalised))}
        for customer_ids in chunks(erasure.customer_ids):
            rows = conn.execute(
                select(
                    identity_t.c.source, identity_t.c.external_id, identity_t.c.email,
                    identity_t.c.phone,
                ).where(identity_t.c.customer_id.in_(customer_ids))
            )  # fmt: skip
            for source, external_id, other_email, phone in rows:
                erasure.identities.setdefault(source, []).append(external_id)
                keys.add((f"source:{source}", tombstone_hash(external_id)))
                if other_email:
                    keys.add(("email", tombstone_hash(other_email)))
                if phone:
                    keys.add(("phone", tombstone_hash(phone)))
        _remember(conn, keys, now)
        _clear(conn, erasure, now)
    return erasure


def _remember(conn: Connection, keys: set[tuple[str, str]], now: datetime) -> None:
    known = {
        (kind, digest)
        for kind, digest in conn.execute(
            select(tombstone_t.c.kind, tombstone_t.c.identifier_hash).where(
                tombstone_t.c.identifier_hash.in_([d for _, d in keys])
            )
        )
    }
    fresh = keys - known
    if fresh:
        conn.execute(
            insert(tombstone_t),
            [{"kind": k, "identifier_hash": d, "erased_at": now} for k, d in sorted(fresh)],
        )


def _clear(conn: Connection, erasure: Erasure, now: datetime) -> None:
    personal = {
        "email": None, "phone": None, "first_name": None, "last_name": None,
        "marketing_consent": None, "acquisition_channel": None,
    }  # fmt: skip
    for ids in chunks(erasure.customer_ids):
        conn.execute(
            update(identity_t).where(identity_t.c.customer_id.in_(ids)).values(**personal, tags=[])
        )
        conn.execute(
            update(customer_t)
            .where(customer_t.c.id.in_(ids))
            .values(**personal, erased_at=now, updated_at=now)
        )
        conn.execute(update(order_t).where(order_t.c.customer_id.in_(ids)).values(email=None))
        conn.execute(
            update(response_t)
            .where(response_t.c.customer_id.in_(ids))
            .values(email=None, comment=None)
        )
    # Rejected rows may hold the raw payload with the person's data in it.
    conditions = [func.lower(rejected_t.c.payload).contains(erasure.email)]
    for source, external_ids in erasure.identities.items():
        for batch in chunks(external_ids):
            conditions.append(
                (rejected_t.c.connector == source) & rejected_t.c.external_id.in_(batch)
            )
    conn.execute(delete(rejected_t).where(or_(*conditions)))


async def erase_in_tools(
    settings: HubSettings,
    registry: PluginRegistry,
    erasure: Erasure,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, str]:
    """Ask every tool that holds the person, and can erase, to erase them too.

    Returns one line per connector: what it did, or why it could not.
    """
    configured = {c.connector_id: c for c in configure_connectors(settings, registry)}
    redactor = build_redactor(list(configured.values()))
    outcome: dict[str, str] = {}
    for connector_id, external_ids in sorted(erasure.identities.items()):
        item = configured.get(connector_id)
        if item is None or item.connector is None:
            outcome[connector_id] = "not configured any more: erase it in the tool by hand"
            continue
        if Capability.ERASE not in item.connector.capabilities:
            outcome[connector_id] = (
                f"its API cannot erase: erase {', '.join(external_ids)} in the tool by hand"
            )
            continue
        connector = open_connector(item, redactor, transport=transport)
        try:
            results = await connector.erase(external_ids)
        except ClmHubError as exc:
            outcome[connector_id] = f"failed: {exc}"
            continue
        finally:
            await connector.http.aclose()
        failed = [r for r in results if r.status is not PushStatus.OK]
        outcome[connector_id] = f"erased {len(results) - len(failed)} record(s)" + "".join(
            f"; {r.external_id}: {r.reason}" for r in failed
        )
    return outcome
