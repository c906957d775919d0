"""The simulator answers like Shopify's Admin GraphQL API (checked with a bare HTTP client)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clm_hub_plugins.shopify import documents as docs
from clm_hub_plugins.shopify.simulator import UNAUTHORIZED_BODY, ShopState

from .conftest import TOKEN

CUSTOMERS = docs.CUSTOMERS.text


@pytest.fixture
def api(shop_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{shop_url}/admin/api/2026-10", headers={"X-Shopify-Access-Token": TOKEN}
    ) as client:
        yield client


def ask(api: httpx.Client, document: str, /, **variables: object) -> dict[str, object]:
    response = api.post("/graphql.json", json={"query": document, "variables": variables})
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def error_codes(body: dict[str, object]) -> list[object]:
    errors = body.get("errors")
    assert isinstance(errors, list)
    return [e.get("extensions", {}).get("code") for e in errors]


def test_wrong_token_gets_shopifys_401_body(shop_url: str) -> None:
    response = httpx.post(
        f"{shop_url}/admin/api/2026-10/graphql.json",
        json={"query": "{ shop { name } }"},
        headers={"X-Shopify-Access-Token": "shpat_wrong"},
    )
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED_BODY)


def test_every_answer_reports_the_query_cost_and_bucket(
    api: httpx.Client, state: ShopState
) -> None:
    state.seed(customers=3, orders=0)
    body = ask(api, CUSTOMERS, first=250, after=None, query=None)
    assert body["extensions"] == {
        "cost": {
            "requestedQueryCost": 252,
            "actualQueryCost": 5,
            "throttleStatus": {
                "maximumAvailable": 2000.0,
                "currentlyAvailable": 1995.0,
                "restoreRate": 100.0,
            },
        }
    }


def test_empty_bucket_answers_throttled_with_the_documented_shape(
    api: httpx.Client, state: ShopState
) -> None:
    state.bucket.drain()
    body = ask(api, CUSTOMERS, first=250, after=None, query=None)
    assert "data" not in body
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
    ]
    cost = body["extensions"]["cost"]  # type: ignore[index]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (252, None)


def test_page_size_above_250_is_refused(api: httpx.Client) -> None:
    body = ask(api, CUSTOMERS, first=251, after=None, query=None)
    assert body["data"] is None
    assert "between 0 and 250" in str(body["errors"])


def test_query_over_1000_points_is_refused(api: httpx.Client) -> None:
    query = "{ a: customers(first: 250) { nodes { id } } b: orders(first: 250) { nodes { id } } "
    query += "c: customers(first: 250) { nodes { id } } d: orders(first: 250) { nodes { id } } }"
    assert error_codes(ask(api, query)) == ["MAX_COST_EXCEEDED"]


def test_required_variable_must_be_given(api: httpx.Client) -> None:
    body = ask(api, CUSTOMERS, after=None, query=None)
    assert error_codes(body) == ["INVALID_VARIABLE"]


def test_unused_and_undeclared_variables_are_refused(api: httpx.Client) -> None:
    query = (
        "query Q($first: Int!, $unused: String) "
        "{ customers(first: $first, after: $cursor) { nodes { id } } }"
    )
    assert sorted(map(str, error_codes(ask(api, query, first=1)))) == [
        "variableNotDefined",
        "variableNotUsed",
    ]


def test_unknown_field_and_argument_are_refused(api: httpx.Client) -> None:
    query = "{ customers(first: 1, order: ASC) { nodes { id nickname } } }"
    assert sorted(map(str, error_codes(ask(api, query)))) == [
        "argumentNotAccepted",
        "undefinedField",
    ]


def test_invalid_sort_key_is_refused(api: httpx.Client) -> None:
    body = ask(api, "{ customers(first: 1, sortKey: NEWEST) { nodes { id } } }")
    assert error_codes(body) == ["argumentLiteralsIncompatible"]


def test_cursor_is_bound_to_the_query_it_came_from(api: httpx.Client, state: ShopState) -> None:
    state.seed(customers=5, orders=0)
    first = ask(api, CUSTOMERS, first=2, after=None, query=None)
    cursor = first["data"]["customers"]["pageInfo"]["endCursor"]  # type: ignore[index]
    same = ask(api, CUSTOMERS, first=2, after=cursor, query=None)
    other = ask(api, CUSTOMERS, first=2, after=cursor, query="updated_at:>='2020-01-01'")
    assert "errors" not in same
    assert "Invalid cursor" in str(other["errors"])


def test_search_filter_is_inclusive_and_sorted_by_updated_at(
    api: httpx.Client, state: ShopState
) -> None:
    state.seed(customers=5, orders=0)
    pivot = state.customers[7003].updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = ask(api, CUSTOMERS, first=10, after=None, query=f"updated_at:>='{pivot}'")
    nodes = body["data"]["customers"]["nodes"]  # type: ignore[index]
    assert [n["id"] for n in nodes] == [
        "gid://shopify/Customer/7003",
        "gid://shopify/Customer/7004",
        "gid://shopify/Customer/7005",
    ]


def test_unknown_search_field_is_ignored_with_a_warning(
    api: httpx.Client, state: ShopState
) -> None:
    state.seed(customers=3, orders=0)
    body = ask(api, CUSTOMERS, first=10, after=None, query="colour:blue")
    assert len(body["data"]["customers"]["nodes"]) == 3  # type: ignore[index]
    assert body["extensions"]["search"][0]["warnings"] == [  # type: ignore[index]
        {"field": "colour", "message": "Invalid search field for this query."}
    ]


def test_unsupported_version_falls_forward_to_the_oldest(shop_url: str) -> None:
    response = httpx.post(
        f"{shop_url}/admin/api/2023-01/graphql.json",
        json={"query": "{ shop { name } }"},
        headers={"X-Shopify-Access-Token": TOKEN},
    )
    assert response.headers["X-Shopify-API-Version"] == "2025-10"


def test_tags_add_splits_commas_and_dedupes_case_insensitively(
    api: httpx.Client, state: ShopState
) -> None:
    customer = state.add_customer(email="a@example.com", tags=["VIP"])
    query = docs.push_document(
        [docs.TagMutation("t", "tagsAdd", customer.gid, ("vip", "a, b", "B"))]
    )
    document, variables = query
    ask(api, document.text, **variables)
    assert state.customer_tags(customer.id) == ["a", "b", "VIP"]


def test_tags_add_on_an_unknown_customer_is_a_user_error(api: httpx.Client) -> None:
    document, variables = docs.push_document(
        [docs.TagMutation("t", "tagsAdd", "gid://shopify/Customer/1", ("x",))]
    )
    body = ask(api, document.text, **variables)
    assert body["data"] == {
        "t": {"node": None, "userErrors": [{"field": ["id"], "message": "Customer does not exist"}]}
    }


def test_bulk_result_needs_its_signature(api: httpx.Client, state: ShopState) -> None:
    state.seed(customers=2, orders=0)
    state.bulk_polls_to_complete = 1
    ask(api, docs.BULK_RUN.text, query=docs.bulk_query("customers", "id"))
    body = ask(api, docs.BULK_POLL.text, id="gid://shopify/BulkOperation/1")
    url = str(body["data"]["bulkOperation"]["url"])  # type: ignore[index]
    assert httpx.get(url).text.splitlines() == [
        '{"id":"gid://shopify/Customer/7001"}',
        '{"id":"gid://shopify/Customer/7002"}',
    ]
    assert httpx.get(url.split("?", maxsplit=1)[0]).status_code == 403


def test_bulk_result_leaves_out_records_created_after_it_started(
    api: httpx.Client, state: ShopState
) -> None:
    state.seed(customers=2, orders=0)
    state.bulk_polls_to_complete = 1
    ask(api, docs.BULK_RUN.text, query=docs.bulk_query("customers", "id"))
    state.add_customer(email="late@example.com")
    body = ask(api, docs.BULK_POLL.text, id="gid://shopify/BulkOperation/1")
    assert body["data"]["bulkOperation"]["rootObjectCount"] == "2"  # type: ignore[index]
    url = str(body["data"]["bulkOperation"]["url"])  # type: ignore[index]
    assert httpx.get(url).text.splitlines() == [
        '{"id":"gid://shopify/Customer/7001"}',
        '{"id":"gid://shopify/Customer/7002"}',
    ]


def test_records_live_in_the_file_and_a_held_record_sees_changes(tmp_path: Path) -> None:
    state = ShopState(path=tmp_path / "shop.sqlite3")
    with state.batch():
        state.seed(customers=2_500, orders=10)  # more than one page of rows
    assert len(state.customers) == 2_500
    assert sum(1 for _ in state.customers.values()) == 2_500  # walked page by page
    held = state.customers[7001]
    state.update_customer(7001, tags=["VIP", "b"])
    assert held.tags == ["VIP", "b"]  # the record a test holds is the live one
    gone = weakref.ref(state.customers[7002])
    gc.collect()
    assert gone() is None  # the state keeps no record on the heap
    assert state.customers[7002].email == "person1@example.com"
    state.close()
