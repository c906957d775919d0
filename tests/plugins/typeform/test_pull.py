"""The Typeform connector's requests, checked at the HTTP boundary against surveys.md A2-A5
(respx routes read like the API contract)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from clm_hub import StreamCursor
from clm_hub.connectors import SlidingWindow
from clm_hub.errors import AuthError, ConfigError, RequestRejected
from clm_hub.testing import VirtualClock
from clm_hub_plugins.typeform import Typeform
from clm_hub_plugins.typeform.cursor import FormCursors

from .conftest import TOKEN, Factory

Json = dict[str, Any]  # vendor JSON in test fixtures
FORM = "AbC123"
NPS_FIELD = {"id": "Xq7LmN2p", "type": "nps", "ref": "nps_score"}
DEFINITION = {
    "id": FORM,
    "title": "NPS Q2",
    "hidden": ["email", "customer_id"],
    "fields": [
        {"id": "Xq7LmN2p", "ref": "nps_score", "title": "How likely...?", "type": "nps"},
        {"id": "Em8HjU3v", "ref": "contact_email", "title": "Email", "type": "email"},
    ],
}
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def response(token: str, minute: int = 0, score: int | None = 9, **hidden: str) -> Json:
    answers: list[Json] = []
    if score is not None:
        answers.append({"field": NPS_FIELD, "type": "number", "number": score})
    return {
        "landing_id": token,
        "token": token,
        "response_id": token,
        "submitted_at": (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "landed_at": T0.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hidden": hidden or {"email": f"{token}@example.com"},
        "answers": answers,
    }


def page(*items: Json) -> Json:
    return {"total_items": len(items), "page_count": 1 if items else 0, "items": list(items)}


def cursor_at(when: datetime, form: str = FORM) -> StreamCursor:
    return FormCursors({form: when}).to_cursor()


@pytest.fixture
def typeform(make_typeform: Factory) -> Typeform:
    return make_typeform(forms=[FORM], overlap_minutes=30)


@pytest.fixture
def definition(typeform_api: respx.MockRouter) -> respx.Route:
    return typeform_api.get(f"/forms/{FORM}").respond(200, json=DEFINITION)


async def pull(connector: Typeform, since: StreamCursor | None = None) -> list[Any]:
    return [p async for p in connector.pull_survey_responses(since)]


def params(call: respx.models.Call) -> dict[str, str]:
    return dict(call.request.url.params)


# -- incremental ------------------------------------------------------------------------------


async def test_incremental_pull_asks_since_sorted_ascending_then_after_without_sort(
    typeform: Typeform, typeform_api: respx.MockRouter, definition: respx.Route
) -> None:
    route = typeform_api.get(f"/forms/{FORM}/responses").mock(
        side_effect=[
            httpx.Response(200, json=page(response("t1", 1), response("t2", 2))),
            httpx.Response(200, json=page(response("t3", 3))),
            httpx.Response(200, json=page()),
        ]
    )
    pages = await pull(typeform, cursor_at(T0 + timedelta(hours=1)))
    first, second, third = (params(c) for c in route.calls)
    assert first == {
        "since": "2024-05-01T09:30:00",  # the cursor minus the 30-minute overlap
        "sort": "submitted_at,asc",
        "page_size": "1000",
    }
    assert second == {"since": "2024-05-01T09:30:00", "after": "t2", "page_size": "1000"}
    assert third == {"since": "2024-05-01T09:30:00", "after": "t3", "page_size": "1000"}
    assert [[r.external_id for r in p.records] for p in pages] == [
        [f"{FORM}:t1", f"{FORM}:t2"],
        [f"{FORM}:t3"],
        [],
    ]
    assert {c.request.headers["Authorization"] for c in typeform_api.calls} == {f"Bearer {TOKEN}"}


async def test_cursor_is_the_newest_answer_per_form_and_never_moves_back(
    typeform: Typeform, typeform_api: respx.MockRouter, definition: respx.Route
) -> None:
    stored = T0 + timedelta(minutes=2)
    typeform_api.get(f"/forms/{FORM}/responses").mock(
        side_effect=[
            httpx.Response(200, json=page(response("t1", 1), response("t2", 5))),
            httpx.Response(200, json=page()),
        ]
    )
    pages = await pull(typeform, cursor_at(stored))
    assert FormCursors.decode(pages[0].cursor).forms == {FORM: T0 + timedelta(minutes=5)}
    assert pages[-1].cursor.updated_since == T0 + timedelta(minutes=5)


async def test_a_response_read_twice_in_one_run_is_yielded_once(
    typeform: Typeform, typeform_api: respx.MockRouter, definition: respx.Route
) -> None:
    typeform_api.get(f"/forms/{FORM}/responses").mock(
        side_effect=[
            httpx.Response(200, json=page(response("t1", 1), response("t2", 2))),
            httpx.Response(200, json=page(response("t2", 2), response("t3", 3))),
            httpx.Response(200, json=page()),
        ]
    )
    pages = await pull(typeform, cursor_at(T0))
    ids = [r.external_id for p in pages for r in p.records]
    assert ids == [f"{FORM}:t1", f"{FORM}:t2", f"{FORM}:t3"]


# -- full backfill ----------------------------------------------------------------------------


async def test_backfill_walks_newest_first_with_before_until_a_short_page(
    make_typeform: Factory, typeform_api: respx.MockRouter, definition: respx.Route
) -> None:
    typeform = make_typeform(forms=[FORM], page_size=2)
    route = typeform_api.get(f"/forms/{FORM}/responses").mock(
        side_effect=[
            httpx.Response(200, json=page(response("t5", 5), response("t4", 4))),
            httpx.Response(200, json=page(response("t3", 3))),
        ]
    )
    pages = await pull(typeform)
    assert [params(c) for c in route.calls] == [
        {"page_size": "2"},
        {"before": "t4", "page_size": "2"},
    ]
    # Newest first: a resume mid-walk would skip older answers, so only the last page
    # carries the form's cursor.
    assert FormCursors.decode(pages[0].cursor).forms == {}
    assert FormCursors.decode(pages[1].cursor).forms == {FORM: T0 + timedelta(minutes=5)}


async def test_each_form_keeps_its_own_cursor(
    make_typeform: Factory, typeform_api: respx.MockRouter
) -> None:
    typeform = make_typeform(forms=[FORM, "Other1"])
    typeform_api.get(f"/forms/{FORM}").respond(200, json=DEFINITION)
    typeform_api.get("/forms/Other1").respond(200, json={**DEFINITION, "id": "Other1"})
    typeform_api.get(f"/forms/{FORM}/responses").mock(
        side_effect=[
            httpx.Response(200, json=page(response("t9", 50))),
            httpx.Response(200, json=page()),
        ]
    )
    other = typeform_api.get("/forms/Other1/responses").mock(
        side_effect=[
            httpx.Response(200, json=page(response("o1", 3))),
            httpx.Response(200, json=page()),
        ]
    )
    since = FormCursors({FORM: T0, "Other1": T0 + timedelta(minutes=1)}).to_cursor()
    pages = await pull(typeform, since)
    assert params(other.calls[0])["since"] == "2024-05-01T08:31:00"  # its own cursor
    final = FormCursors.decode(pages[-1].cursor).forms
    assert final == {FORM: T0 + timedelta(minutes=50), "Other1": T0 + timedelta(minutes=3)}


# -- rejections and skips ---------------------------------------------------------------------


async def test_unidentified_and_unanswered_responses_do_not_stop_the_page(
    typeform: Typeform, typeform_api: respx.MockRouter, definition: respx.Route
) -> None:
    anonymous = response("anon", 1)
    anonymous["hidden"] = {}
    out_of_scale = response("big", 2, score=None)
    out_of_scale["answers"] = [{"field": NPS_FIELD, "type": "number", "number": 12}]
    typeform_api.get(f"/forms/{FORM}/responses").mock(
        side_effect=[
            httpx.Response(
                200,
                json=page(
                    response("ok1", 0),
                    anonymous,
                    response("skip", 3, score=None),
                    out_of_scale,
                    {"token": "bad", "submitted_at": "yesterday"},
                    response("ok2", 4, customer_id="C-42"),
                ),
            ),
            httpx.Response(200, json=page()),
        ]
    )
    first, _ = await pull(typeform, cursor_at(T0))
    assert [r.external_id for r in first.records] == [f"{FORM}:ok1", f"{FORM}:ok2"]
    assert first.records[1].customer_external_id == "C-42" and first.records[1].email is None
    reasons = {r.external_id: r.reason for r in first.rejected}
    assert set(reasons) == {f"{FORM}:anon", f"{FORM}:big", f"{FORM}:bad"}
    assert (
        "no respondent identity: nothing in hidden field 'customer_id' or hidden field "
        in (reasons[f"{FORM}:anon"])
    )
    assert "12 is not on the question's scale 0-10" in reasons[f"{FORM}:big"]
    assert "submitted_at" in reasons[f"{FORM}:bad"]
    # The unanswered one is neither a record nor a rejection: the question is optional.


async def test_a_listed_form_without_an_nps_question_is_a_config_error(
    typeform: Typeform, typeform_api: respx.MockRouter
) -> None:
    stars = {"id": "r", "ref": "stars", "type": "rating", "properties": {"steps": 5}}
    rating = {**DEFINITION, "fields": [stars]}
    typeform_api.get(f"/forms/{FORM}").respond(200, json=rating)
    with pytest.raises(ConfigError, match="no question of type nps; set nps_ref"):
        await pull(typeform)


async def test_all_forms_lists_forms_by_page_and_skips_those_without_nps(
    make_typeform: Factory, typeform_api: respx.MockRouter
) -> None:
    typeform = make_typeform(forms="all", forms_page_size=1)
    listing = typeform_api.get("/forms").mock(
        side_effect=[
            httpx.Response(200, json={"total_items": 2, "page_count": 2, "items": [{"id": FORM}]}),
            httpx.Response(
                200, json={"total_items": 2, "page_count": 2, "items": [{"id": "Quiz1"}]}
            ),
        ]
    )
    typeform_api.get(f"/forms/{FORM}").respond(200, json=DEFINITION)
    typeform_api.get("/forms/Quiz1").respond(
        200, json={"id": "Quiz1", "fields": [{"id": "q", "type": "short_text"}]}
    )
    responses = typeform_api.get(f"/forms/{FORM}/responses").respond(200, json=page(response("t1")))
    pages = await pull(typeform)
    assert [params(c) for c in listing.calls] == [
        {"page": "1", "page_size": "1"},
        {"page": "2", "page_size": "1"},
    ]
    assert responses.call_count == 1
    assert [r.survey_id for p in pages for r in p.records] == [FORM]


# -- errors and limits ------------------------------------------------------------------------


def error(code: str, description: str, field: str | None = None) -> Json:
    details = [] if field is None else [{"code": code, "description": description,
                                        "field": field, "in": "query"}]  # fmt: skip
    return {"code": code, "description": description, "details": details}


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (401, error("AUTHENTICATION_FAILED", "Authentication credentials not found"), AuthError,
         "Typeform refused the token on GET /forms/AbC123 (401, AUTHENTICATION_FAILED: "
         "Authentication credentials not found). Set token"),
        (403, error("FORBIDDEN", "Missing scope forms:read"), AuthError,
         "(403, FORBIDDEN: Missing scope forms:read): the token lacks a scope"),
        (404, error("FORM_NOT_FOUND", "Non existing form with uid AbC123"), RequestRejected,
         "Typeform does not know GET /forms/AbC123 (404, FORM_NOT_FOUND: Non existing form"),
        (422, error("VALIDATION_ERROR", "page_size must be at most 1000", "page_size"),
         RequestRejected, "(422, VALIDATION_ERROR: page_size must be at most 1000 (parameter "
         "page_size))"),
    ],
)  # fmt: skip
async def test_error_bodies_become_typed_errors_with_typeforms_description(
    typeform: Typeform,
    typeform_api: respx.MockRouter,
    status: int,
    body: Json,
    kind: type[Exception],
    message: str,
) -> None:
    route = typeform_api.get(f"/forms/{FORM}").respond(status, json=body)
    with pytest.raises(kind) as caught:
        await pull(typeform)
    assert message in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert route.call_count == 1  # never retried


async def test_429_waits_retry_after_then_goes_on(
    make_typeform: Factory, typeform_api: respx.MockRouter
) -> None:
    clock = VirtualClock()
    typeform = make_typeform(forms=[FORM], clock=clock)
    typeform.http.limiter = SlidingWindow(10_000, 1.0, clock=clock)  # hold on virtual time
    typeform_api.get(f"/forms/{FORM}").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, json=error("RATE_LIMITED", "Slow")),
            httpx.Response(200, json=DEFINITION),
        ]
    )
    typeform_api.get(f"/forms/{FORM}/responses").respond(200, json=page(response("t1")))
    pages = await pull(typeform)
    assert [r.external_id for p in pages for r in p.records] == [f"{FORM}:t1"]
    assert 3.0 in clock.sleeps
    assert typeform.http.stats.throttled == 1 and typeform.http.stats.retries == 1


def test_requests_are_paced_at_typeforms_two_per_second() -> None:
    from clm_hub_plugins.typeform.settings import TypeformSettings

    options = Typeform.http_options(TypeformSettings(token=TOKEN))
    limiter = options.limiter
    assert isinstance(limiter, SlidingWindow)
    assert limiter.limit == 2 and 1.0 <= limiter.window < 1.1
    assert options.base_url == "https://api.typeform.com"


async def test_pacing_spaces_requests_half_a_second_apart_on_average(
    make_typeform: Factory, typeform_api: respx.MockRouter, definition: respx.Route
) -> None:
    clock = VirtualClock()
    typeform = make_typeform(forms=[FORM], page_size=1, clock=clock)
    typeform.http.limiter = SlidingWindow(2, 1.0, skew=0, clock=clock)
    typeform_api.get(f"/forms/{FORM}/responses").mock(
        side_effect=[httpx.Response(200, json=page(response(f"t{i}", -i))) for i in range(5)]
        + [httpx.Response(200, json=page())]
    )
    await pull(typeform)
    # 7 requests: 2 at once, then 2 per second.
    assert clock.now == pytest.approx(3.0)


async def test_check_reads_me_and_names_the_fix_when_the_token_is_refused(
    typeform: Typeform, typeform_api: respx.MockRouter
) -> None:
    typeform_api.get("/me").mock(
        side_effect=[
            httpx.Response(200, json={"alias": "acme", "email": "owner@example.com"}),
            httpx.Response(401, json=error("AUTHENTICATION_FAILED", "Invalid token")),
        ]
    )
    await typeform.check()
    with pytest.raises(AuthError, match=r'token \(or token_file\).*region = "eu"'):
        await typeform.check()
