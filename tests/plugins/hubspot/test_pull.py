"""Pulling contacts and orders from the simulator over real HTTP."""

from __future__ import annotations

from decimal import Decimal

import httpx

from clm_hub import OrderStatus, StreamCursor
from clm_hub_plugins.hubspot.simstate import HubSpotState
from clm_hub_plugins.hubspot.vendor import parse_timestamp, to_ms

from .conftest import TOKEN, Factory, ago


def seed_contacts(state: HubSpotState, count: int, *, hours_ago: float = 5) -> list[str]:
    return [
        state.add_contact(f"p{i}@example.com", modified_at=ago(hours=hours_ago, seconds=-i))
        for i in range(count)
    ]


async def test_full_pull_reads_every_contact_across_pages(
    state: HubSpotState, sim: Factory
) -> None:
    ids = seed_contacts(state, 7)
    hubspot = sim(page_size=3)
    pages = [page async for page in hubspot.pull_contacts(None)]
    assert [len(p.records) for p in pages] == [3, 3, 1]
    assert [r.external_id for p in pages for r in p.records] == ids
    last = pages[-1].cursor
    assert last is not None and last.token is None
    assert last.updated_since == parse_timestamp(
        state.contact(ids[-1]).properties["lastmodifieddate"]
    )


async def test_incremental_pull_returns_the_contacts_changed_after_the_cursor(
    state: HubSpotState, sim: Factory
) -> None:
    ids = seed_contacts(state, 6)
    hubspot = sim()
    pages = [page async for page in hubspot.pull_contacts(None)]
    cursor = pages[-1].cursor
    state.update_object("contacts", ids[1], {"firstname": "Changed"}, modified_at=ago(minutes=2))
    state.update_object("contacts", ids[4], {"firstname": "Changed"}, modified_at=ago(minutes=1))
    pages = [page async for page in hubspot.pull_contacts(cursor)]
    got = [r.external_id for p in pages for r in p.records]
    # The last contact of the full pull sits on the cursor itself (GTE) and is read again.
    assert got == [ids[5], ids[1], ids[4]]
    assert state.calls("/crm/v3/objects/contacts/search", "POST")


async def test_incremental_pull_reads_past_the_search_result_cap(
    state: HubSpotState, sim: Factory
) -> None:
    state.search_result_cap = 20
    ids = seed_contacts(state, 55)
    hubspot = sim(search_page_size=10)
    pages = [page async for page in hubspot.pull_contacts(StreamCursor(updated_since=ago(days=1)))]
    got = [r.external_id for p in pages for r in p.records]
    assert set(got) == set(ids)
    assert {r.status for r in state.requests} == {200}


def test_simulator_answers_400_when_offset_paging_passes_the_cap(
    state: HubSpotState, sim_url: str
) -> None:
    state.search_result_cap = 20
    seed_contacts(state, 30)
    answer = httpx.post(
        f"{sim_url}/crm/v3/objects/contacts/search",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"filterGroups": [], "sorts": [], "properties": [], "limit": 10, "after": "20"},
    )
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


async def test_more_contacts_at_one_timestamp_than_a_page_are_all_read(
    state: HubSpotState, sim: Factory
) -> None:
    bulk = ago(hours=1)  # a bulk update touched them all in the same millisecond
    ids = [state.add_contact(f"b{i}@example.com", modified_at=bulk) for i in range(25)]
    later = state.add_contact("late@example.com", modified_at=ago(minutes=5))
    hubspot = sim(search_page_size=10)
    pages = [page async for page in hubspot.pull_contacts(StreamCursor(updated_since=bulk))]
    got = [r.external_id for p in pages for r in p.records]
    assert set(got) == {*ids, later}
    assert len(pages) < 10  # tie mode pages by id instead of looping


async def test_pull_resumes_from_a_page_cursor_where_it_stopped(
    state: HubSpotState, sim: Factory
) -> None:
    ids = seed_contacts(state, 9)
    hubspot = sim(search_page_size=4)
    since = StreamCursor(updated_since=ago(days=1))
    first = await anext(aiter(hubspot.pull_contacts(since)))
    assert first.cursor is not None and first.cursor.token is not None
    rest = [page async for page in hubspot.pull_contacts(first.cursor)]
    read = [r.external_id for p in [first, *rest] for r in p.records]
    assert set(read) == set(ids)
    assert len(read) <= len(ids) + len(rest)  # at most the boundary contact again per page


async def test_pull_orders_reads_won_deals_then_commerce_orders_linked_to_contacts(
    state: HubSpotState, sim: Factory
) -> None:
    ann = state.add_contact("ann@example.com", modified_at=ago(days=2))
    won = state.add_deal(amount="129.90", contact_id=ann, closed_at=ago(days=1))
    lost = state.add_deal(amount=None, stage="closedlost", contact_id=ann)
    order = state.add_order(total="40.00", currency="USD", contact_id=ann)
    hubspot = sim(order_sources=["deals", "orders"])
    pages = [page async for page in hubspot.pull_orders(None)]
    records = {r.external_id: r for p in pages for r in p.records}
    assert set(records) == {f"deal:{won}", f"deal:{lost}", f"order:{order}"}
    assert records[f"deal:{won}"].status is OrderStatus.PAID
    assert records[f"deal:{won}"].total == Decimal("129.90")
    assert records[f"deal:{lost}"].status is OrderStatus.CANCELLED
    assert records[f"order:{order}"].currency == "USD"
    assert {r.customer_external_id for r in records.values()} == {ann}
    between = pages[0].cursor
    assert between is not None and between.token is not None and '"orders"' in between.token


def test_search_from_a_last_modified_floor_matches_a_full_scan(
    state: HubSpotState, sim_url: str
) -> None:
    """A search bounded below by last-modified reads only the rows at or after the floor
    (by index); the answer is what filtering every row gives, at millisecond precision."""
    floor = ago(hours=2).replace(microsecond=123_456)
    before = state.add_contact("before@example.com", modified_at=floor.replace(microsecond=122_999))
    same_ms = state.add_contact("same@example.com", modified_at=floor.replace(microsecond=123_001))
    after = state.add_contact("after@example.com", modified_at=ago(minutes=1))
    stamp = str(to_ms(floor))

    def found(groups: list[object]) -> set[str]:
        answer = httpx.post(
            f"{sim_url}/crm/v3/objects/contacts/search",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"filterGroups": groups, "limit": 100},
        )
        assert answer.status_code == 200, answer.text
        return {r["id"] for r in answer.json()["results"]}

    gte = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": stamp}
    email = {"propertyName": "email", "operator": "EQ", "value": "before@example.com"}
    assert found([{"filters": [gte]}]) == {same_ms, after}
    # One group without a floor: every row is scanned.
    assert found([{"filters": [gte]}, {"filters": [email]}]) == {before, same_ms, after}
