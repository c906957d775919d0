"""Identity resolution in the store: merges, guards, deletes and erased people."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clm_hub.identity import IdentityRules
from clm_hub.linking import (
    ContactBatchResult,
    IdentityContext,
    customer_t,
    identity_t,
    ingest_contacts,
    merge_t,
    tombstone_hash,
    tombstone_t,
)
from clm_hub.records import ContactRecord

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def ingest(
    store: Engine, source: str, *records: ContactRecord, rules: IdentityRules | None = None
) -> ContactBatchResult:
    ctx = IdentityContext(source, rules or IdentityRules(), "US", NOW)
    with store.begin() as conn:
        return ingest_contacts(conn, ctx, list(records))


def contact(ext: str, **fields: Any) -> ContactRecord:
    return ContactRecord(external_id=ext, **fields)


def customer_of(store: Engine, source: str, ext: str) -> int | None:
    with store.connect() as conn:
        found: int | None = conn.execute(
            select(identity_t.c.customer_id).where(
                identity_t.c.source == source, identity_t.c.external_id == ext
            )
        ).scalar_one()
    return found


def customers(store: Engine) -> int:
    with store.connect() as conn:
        return len(conn.execute(select(customer_t.c.id)).all())


def test_shared_email_links_two_tools(store: Engine) -> None:
    ingest(store, "shop", contact("1", email="Ann@Example.com"))
    ingest(store, "crm", contact("a", email=" ann@example.com"))
    assert customer_of(store, "shop", "1") == customer_of(store, "crm", "a")
    assert customers(store) == 1


def test_shared_phone_links_records_without_email(store: Engine) -> None:
    ingest(store, "shop", contact("1", email="ann@example.com", phone="(415) 555-2671"))
    ingest(store, "crm", contact("a", phone="+1 415 555 2671"))
    assert customer_of(store, "shop", "1") == customer_of(store, "crm", "a")


def test_same_phone_with_different_emails_stays_two_people(store: Engine) -> None:
    ingest(store, "shop", contact("1", email="ann@example.com", phone="+14155552671"))
    ingest(store, "crm", contact("a", email="bob@example.com", phone="+14155552671"))
    assert customer_of(store, "shop", "1") != customer_of(store, "crm", "a")


def test_role_address_never_joins_records(store: Engine) -> None:
    ingest(store, "shop", contact("1", email="info@acme.com", first_name="Ann"))
    ingest(store, "crm", contact("a", email="INFO@acme.com", first_name="Bob"))
    assert customer_of(store, "shop", "1") != customer_of(store, "crm", "a")


def test_phone_held_by_many_customers_is_not_a_join_key(store: Engine) -> None:
    switchboard = "+14155550000"
    for i in range(3):
        ingest(store, "crm", contact(f"c{i}", email=f"p{i}@corp.com", phone=switchboard))
    ingest(store, "shop", contact("1", phone=switchboard))
    linked = {customer_of(store, "crm", f"c{i}") for i in range(3)}
    assert customer_of(store, "shop", "1") not in linked
    assert customers(store) == 4


def test_a_bridging_record_merges_two_customers_and_keeps_a_merge_record(store: Engine) -> None:
    ingest(store, "shop", contact("1", email="ann@example.com", created_at=NOW.replace(year=2024)))
    ingest(store, "crm", contact("a", phone="+14155552671"))
    assert customers(store) == 2
    survivor = customer_of(store, "shop", "1")
    result = ingest(store, "mail", contact("m", email="ann@example.com", phone="+14155552671"))
    assert result.merges == 1
    assert customers(store) == 1
    assert customer_of(store, "crm", "a") == survivor  # the earliest created survives
    with store.connect() as conn:
        [(kept, merged)] = conn.execute(select(merge_t.c.survivor_id, merge_t.c.merged_id)).all()
    assert kept == survivor and merged != survivor


def test_records_in_one_page_that_share_an_email_become_one_customer(store: Engine) -> None:
    ingest(
        store, "shop", contact("1", email="ann@example.com"), contact("2", email="ANN@example.com")
    )
    assert customer_of(store, "shop", "1") == customer_of(store, "shop", "2")


def test_customer_fields_follow_survivorship(store: Engine) -> None:
    ingest(store, "shop", contact("1", email="ann@example.com", first_name="Ann",
                                  updated_at=NOW.replace(month=1)))  # fmt: skip
    ingest(store, "crm", contact("a", email="ann@example.com", first_name="Anne",
                                 last_name="Lee", updated_at=NOW.replace(month=2)))  # fmt: skip
    with store.connect() as conn:
        first, last = conn.execute(select(customer_t.c.first_name, customer_t.c.last_name)).one()
    assert (first, last) == ("Anne", "Lee")


def test_unchanged_record_costs_no_write(store: Engine) -> None:
    record = contact("1", email="ann@example.com")
    ingest(store, "shop", record)
    again = ingest(store, "shop", record)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1)
    assert again.dirty_customers == set()


def test_deleted_record_is_unlinked(store: Engine) -> None:
    ingest(store, "shop", contact("1", email="ann@example.com"))
    ingest(store, "crm", contact("a", email="ann@example.com", first_name="Anne"))
    ingest(store, "crm", contact("a", email="ann@example.com", first_name="Anne", deleted=True))
    assert customer_of(store, "crm", "a") is None
    with store.connect() as conn:
        assert conn.execute(select(customer_t.c.first_name)).scalar_one() is None


def test_a_forgotten_person_is_not_recreated(store: Engine) -> None:
    with store.begin() as conn:
        conn.execute(
            tombstone_t.insert(),
            [{"kind": "email", "identifier_hash": tombstone_hash("ann@example.com"),
              "erased_at": NOW}],
        )  # fmt: skip
    result = ingest(
        store, "shop", contact("1", email="Ann@example.com"), contact("2", email="b@x.io")
    )
    assert result.suppressed == 1
    assert result.inserted == 1
    assert customers(store) == 1


@pytest.mark.parametrize("rules", [IdentityRules(max_customers_per_phone=1)])
def test_phone_threshold_is_configurable(store: Engine, rules: IdentityRules) -> None:
    ingest(store, "crm", contact("a", email="ann@example.com", phone="+14155552671"), rules=rules)
    ingest(store, "shop", contact("1", phone="+14155552671"), rules=rules)
    assert customer_of(store, "shop", "1") != customer_of(store, "crm", "a")
