"""The Typeform simulator answers like surveys.md section A says Typeform does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from clm_hub_plugins.typeform.simstate import DEFAULT_TOKEN, TypeformState
from clm_hub_plugins.typeform.simulator import create_app

FORM = "NpsForm01"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def account(state: TypeformState) -> TypeformState:
    state.add_form(FORM)
    for minute in (3, 1, 2, 2):  # added out of order; two share a second
        state.add_response(
            FORM, score=minute, email=f"p{minute}@example.com",
            submitted_at=T0 + timedelta(minutes=minute),
        )  # fmt: skip
    return state


async def get(
    state: TypeformState, path: str, token: str = DEFAULT_TOKEN, **params: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://typeform.test") as http:
        return await http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def minutes(body: Any) -> list[int]:
    return [int(item["answers"][0]["number"]) for item in body["items"]]


async def test_responses_default_to_newest_first_and_since_is_inclusive(
    account: TypeformState,
) -> None:
    newest = await get(account, f"/forms/{FORM}/responses")
    assert minutes(newest.json()) == [3, 2, 2, 1]
    since = await get(account, f"/forms/{FORM}/responses", since="2024-05-01T09:02:00",
                      sort="submitted_at,asc")  # fmt: skip
    assert minutes(since.json()) == [2, 2, 3]
    assert (since.json()["total_items"], since.json()["page_count"]) == (3, 1)


async def test_after_and_before_are_exclusive_and_follow_processing_order(
    account: TypeformState,
) -> None:
    first = await get(account, f"/forms/{FORM}/responses", page_size=2, sort="submitted_at,asc")
    last = first.json()["items"][-1]["token"]
    after = await get(account, f"/forms/{FORM}/responses", page_size=2, after=last)
    assert minutes(first.json()) + minutes(after.json()) == [1, 2, 2, 3]
    before = await get(account, f"/forms/{FORM}/responses", page_size=2, before=last)
    assert minutes(before.json()) == [1]
    empty = await get(account, f"/forms/{FORM}/responses", after=after.json()["items"][-1]["token"])
    assert empty.json() == {"total_items": 0, "page_count": 0, "items": []}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "x", "sort": "submitted_at,asc"}, "sort"),
        ({"page_size": "1001"}, "page_size"),
        ({"since": "last tuesday"}, "since"),
        ({"after": "unknown-token"}, "after"),
    ],
)
async def test_invalid_parameters_answer_422_with_typeforms_error_body(
    account: TypeformState, params: dict[str, str], field: str
) -> None:
    answer = await get(account, f"/forms/{FORM}/responses", **params)
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "VALIDATION_ERROR" and body["details"][0]["field"] == field
    assert body["description"] and body["help"].startswith("https://developer.typeform.com/errors#")


async def test_auth_scope_and_unknown_form_errors(account: TypeformState) -> None:
    account.tokens["tfp_readonly"] = frozenset({"forms:read"})
    assert (await get(account, "/me", token="tfp_wrong")).json()["code"] == "AUTHENTICATION_FAILED"
    forbidden = await get(account, f"/forms/{FORM}/responses", token="tfp_readonly")
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "FORBIDDEN")
    missing = await get(account, "/forms/Nope42")
    assert (missing.status_code, missing.json()["code"]) == (404, "FORM_NOT_FOUND")


async def test_two_requests_per_second_then_429_with_retry_after(account: TypeformState) -> None:
    account.requests_per_second = 2
    account.retry_after_s = 1
    statuses = [(await get(account, "/me")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = await get(account, "/me")
    assert throttled.headers["Retry-After"] == "1"
    assert sum(account.throttled.values()) == 2


async def test_recent_responses_are_not_returned_until_processed(account: TypeformState) -> None:
    account.add_response(FORM, score=10, email="late@example.com")
    account.visibility_delay_s = 1800
    assert 10 not in minutes((await get(account, f"/forms/{FORM}/responses")).json())
    account.visibility_delay_s = 0
    assert 10 in minutes((await get(account, f"/forms/{FORM}/responses")).json())
