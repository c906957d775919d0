"""The HubSpot connector's requests, checked at the HTTP boundary against hubspot.md and the
OpenAPI subset in hubspot_spec_subset.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from clm_hub import OrderStatus, PushChange, PushStatus, StreamCursor
from clm_hub.errors import AuthError, RequestRejected
from clm_hub.redaction import MASK
from clm_hub_plugins.hubspot import HubSpot
from clm_hub_plugins.hubspot.limits import HubSpotLimiter, hubspot_retry_after
from clm_hub_plugins.hubspot.vendor import to_ms

from .conftest import API, TOKEN, Factory
from .spec import assert_valid

CONTACT_PROPERTIES = (
    "email,firstname,lastname,phone,mobilephone,createdate,lastmodifieddate,lifecyclestage,"
    "hs_email_optout"
)
SINCE = datetime(2026, 2, 1, tzinfo=UTC)
Json = dict[str, Any]  # vendor JSON in test fixtures


@pytest.fixture
def hubspot_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=True) as router:
        yield router


@pytest.fixture
def hubspot(make_hubspot: Factory) -> HubSpot:
    return make_hubspot(index_lag_seconds=0)


def contact(ident: int, modified: str = "2026-02-03T08:12:44.120Z", **props: str) -> Json:
    return {
        "id": str(ident),
        "properties": {
            "email": f"p{ident}@example.org",
            "firstname": "Ann",
            "createdate": "2024-02-01T10:00:00.000Z",
            "lastmodifieddate": modified,
            **props,
        },
        "createdAt": "2024-02-01T10:00:00.000Z",
        "updatedAt": modified,
        "archived": False,
    }


def body_of(call: respx.models.Call) -> Json:
    body: Json = json.loads(call.request.content)
    return body


def enum_property(name: str, values: list[str], field_type: str = "select") -> Json:
    return {
        "name": name,
        "label": name,
        "type": "enumeration",
        "fieldType": field_type,
        "groupName": "clm_hub",
        "options": [
            {"label": v, "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(values)
        ],
    }


# -- pulling --------------------------------------------------------------------------------


async def test_full_pull_lists_contacts_with_their_properties_and_follows_after(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    # respx matches query params by inclusion, so the more specific route goes first.
    second = hubspot_api.get("/crm/v3/objects/contacts", params={"after": "MTAy"}).respond(
        200, json={"results": [contact(103)]}
    )
    first = hubspot_api.get(
        "/crm/v3/objects/contacts",
        params={"limit": "100", "properties": CONTACT_PROPERTIES, "archived": "false"},
    ).respond(
        200,
        json={
            "results": [contact(101), contact(102)],
            "paging": {"next": {"after": "MTAy", "link": f"{API}/crm/v3/objects/contacts"}},
        },
    )
    pages = [page async for page in hubspot.pull_contacts(None)]
    assert [[r.external_id for r in p.records] for p in pages] == [["101", "102"], ["103"]]
    assert first.call_count == 1 and second.call_count == 1
    assert "after" not in first.calls.last.request.url.params
    assert {c.request.headers["Authorization"] for c in hubspot_api.calls} == {f"Bearer {TOKEN}"}


async def test_incremental_pull_searches_last_modified_between_cursor_and_frozen_bound(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    route = hubspot_api.post("/crm/v3/objects/contacts/search").respond(
        200, json={"total": 1, "results": [contact(101)]}
    )
    before = to_ms(datetime.now(UTC))
    [page] = [p async for p in hubspot.pull_contacts(StreamCursor(updated_since=SINCE))]
    body = body_of(route.calls.last)
    assert_valid("PublicObjectSearchRequest", body)
    [[lower, upper]] = [group["filters"] for group in body["filterGroups"]]
    assert lower == {
        "propertyName": "lastmodifieddate",
        "operator": "GTE",
        "value": "1769904000000",
    }
    assert upper["propertyName"] == "lastmodifieddate" and upper["operator"] == "LTE"
    assert before <= int(upper["value"]) <= to_ms(datetime.now(UTC))
    assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert body["limit"] == 200 and body["after"] == "0"
    assert body["properties"] == CONTACT_PROPERTIES.split(",")
    assert page.cursor == StreamCursor(
        updated_since=datetime(2026, 2, 3, 8, 12, 44, 120000, tzinfo=UTC)
    )


async def test_next_search_page_restarts_the_window_at_the_last_timestamp_seen(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    route = hubspot_api.post("/crm/v3/objects/contacts/search").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "total": 3,
                    "results": [contact(101, "2026-02-02T00:00:00.000Z"), contact(102)],
                    "paging": {"next": {"after": "2"}},
                },
            ),
            httpx.Response(200, json={"total": 2, "results": [contact(102), contact(103)]}),
        ]
    )
    pages = [p async for p in hubspot.pull_contacts(StreamCursor(updated_since=SINCE))]
    second = body_of(route.calls[1])
    assert second["after"] == "0"  # keyset, never an offset: no 10k cap, no shifting
    assert second["filterGroups"][0]["filters"][0] == {
        "propertyName": "lastmodifieddate",
        "operator": "GTE",
        "value": str(to_ms(datetime(2026, 2, 3, 8, 12, 44, 120000, tzinfo=UTC))),
    }
    assert pages[0].cursor is not None and pages[0].cursor.token is not None
    assert pages[1].cursor is not None and pages[1].cursor.token is None


async def test_full_search_page_at_one_timestamp_pages_by_object_id(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    stamp = "2026-02-01T00:00:00.000Z"  # == SINCE: a bulk update at the window's start
    route = hubspot_api.post("/crm/v3/objects/contacts/search").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "total": 9,
                    "results": [contact(7, stamp), contact(3, stamp)],
                    "paging": {"next": {"after": "2"}},
                },
            ),
            httpx.Response(200, json={"total": 1, "results": [contact(9, stamp)]}),
            httpx.Response(200, json={"total": 0, "results": []}),
        ]
    )
    [p async for p in hubspot.pull_contacts(StreamCursor(updated_since=SINCE))]
    tie = body_of(route.calls[1])
    assert_valid("PublicObjectSearchRequest", tie)
    value = str(to_ms(SINCE))
    assert tie["filterGroups"][0]["filters"] == [
        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": value},
        {"propertyName": "lastmodifieddate", "operator": "LTE", "value": value},
        {"propertyName": "hs_object_id", "operator": "GT", "value": "0"},
    ]
    assert tie["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    after_tie = body_of(route.calls[2])["filterGroups"][0]["filters"][0]
    assert after_tie == {"propertyName": "lastmodifieddate", "operator": "GT", "value": value}


async def test_malformed_contact_is_rejected_and_the_rest_of_the_page_goes_on(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    bad = contact(102, createdate="last tuesday")
    hubspot_api.get("/crm/v3/objects/contacts").respond(200, json={"results": [contact(101), bad]})
    [page] = [p async for p in hubspot.pull_contacts(None)]
    assert [r.external_id for r in page.records] == ["101"]
    [rejected] = page.rejected
    assert rejected.external_id == "102"
    assert "last tuesday" in rejected.reason


async def test_deals_search_hs_lastmodifieddate_and_link_contacts_through_v4(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    deal = {
        "id": "9001",
        "properties": {
            "amount": "129.90",
            "deal_currency_code": "EUR",
            "closedate": "2026-01-30T00:00:00Z",
            "dealstage": "closedwon",
            "hs_lastmodifieddate": "2026-02-02T00:00:00Z",
        },
    }
    search = hubspot_api.post("/crm/v3/objects/deals/search").respond(
        200, json={"total": 1, "results": [deal]}
    )
    links = hubspot_api.post("/crm/v4/associations/deals/contacts/batch/read").respond(
        200,
        json={
            "status": "COMPLETE",
            "results": [
                {
                    "from": {"id": "9001"},
                    "to": [
                        {"toObjectId": 77, "associationTypes": [{"typeId": 3}]},
                        {"toObjectId": 51, "associationTypes": [{"typeId": 3}]},
                    ],
                }
            ],
        },
    )
    [page] = [p async for p in hubspot.pull_orders(StreamCursor(updated_since=SINCE))]
    filters = body_of(search.calls.last)["filterGroups"][0]["filters"]
    assert {f["propertyName"] for f in filters} == {"hs_lastmodifieddate"}
    assert body_of(links.calls.last) == {"inputs": [{"id": "9001"}]}
    assert_valid("BatchInputPublicFetchAssociationsBatchRequest", body_of(links.calls.last))
    [order] = page.records
    assert order.external_id == "deal:9001"
    assert order.customer_external_id == "51"  # the oldest associated contact
    assert (order.total, order.currency, order.status) == (
        Decimal("129.90"),
        "EUR",
        OrderStatus.PAID,
    )
    assert order.placed_at == datetime(2026, 1, 30, tzinfo=UTC)


# -- pushing --------------------------------------------------------------------------------


async def test_push_sends_batch_update_and_reads_207_into_outcomes(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.get("/crm/v3/properties/contacts/clm_stage").respond(
        200, json=enum_property("clm_stage", ["new", "vip"])
    )
    update = hubspot_api.post("/crm/v3/objects/contacts/batch/update").respond(
        207,
        json={
            "status": "COMPLETE",
            "results": [{"id": "51", "properties": {"clm_stage": "vip"}}],
            "numErrors": 1,
            "errors": [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects.",
                    "context": {"ids": ["999"]},
                }
            ],
        },
    )
    outcomes = await hubspot.push(
        [
            PushChange(external_id="51", set_fields={"clm_stage": "vip"}),
            PushChange(external_id="999", set_fields={"clm_stage": None}),
        ]
    )
    body = body_of(update.calls.last)
    assert_valid("BatchInputSimplePublicObjectBatchInput", body)
    assert body == {
        "inputs": [
            {"id": "51", "properties": {"clm_stage": "vip"}},
            {"id": "999", "properties": {"clm_stage": ""}},  # None clears with ""
        ]
    }
    assert [(o.external_id, o.status, o.reason) for o in outcomes] == [
        ("51", PushStatus.OK, None),
        ("999", PushStatus.FAILED, "OBJECT_NOT_FOUND: Could not get some CONTACT objects."),
    ]


async def test_batch_rejected_as_a_whole_is_halved_until_the_bad_input_stands_alone(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.get("/crm/v3/properties/contacts/clm_stage").respond(
        200, json=enum_property("clm_stage", ["new", "vip"])
    )

    def answer(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        if any(i["id"] == "3" for i in inputs):
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "message": "Property values were not valid",
                    "category": "VALIDATION_ERROR",
                },
            )
        return httpx.Response(200, json={"status": "COMPLETE", "results": inputs})

    update = hubspot_api.post("/crm/v3/objects/contacts/batch/update").mock(side_effect=answer)
    changes = [PushChange(external_id=str(i), set_fields={"clm_stage": "vip"}) for i in range(4)]
    outcomes = await hubspot.push(changes)
    assert [o.status for o in outcomes] == [PushStatus.OK] * 3 + [PushStatus.FAILED]
    assert outcomes[3].reason == "VALIDATION_ERROR: Property values were not valid"
    sizes = [len(body_of(c)["inputs"]) for c in update.calls]
    assert sizes == [4, 2, 2, 1, 1]


async def test_push_refuses_tags_and_foreign_properties_without_calling_hubspot(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    outcomes = await hubspot.push(
        [
            PushChange(external_id="1", add_tags=frozenset({"clm:stage:vip"})),
            PushChange(external_id="2", set_fields={"firstname": "Eve"}),
        ]
    )
    assert [o.status for o in outcomes] == [PushStatus.FAILED, PushStatus.FAILED]
    assert "no tags" in (outcomes[0].reason or "")
    assert "firstname is not owned by the hub" in (outcomes[1].reason or "")
    assert not hubspot_api.calls


async def test_push_fails_a_value_that_is_not_an_option_before_sending(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.get("/crm/v3/properties/contacts/clm_segment").respond(
        200, json=enum_property("clm_segment", ["champions", "lost"], "checkbox")
    )
    [outcome] = await hubspot.push(
        [PushChange(external_id="1", set_fields={"clm_segment": "champions;sleepy"})]
    )
    assert outcome.status is PushStatus.FAILED
    assert outcome.reason is not None and outcome.reason.startswith("sleepy is not an option")


async def test_clearing_a_property_hubspot_does_not_have_sends_nothing(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.get("/crm/v3/properties/contacts/clm_nps").respond(
        404, json={"status": "error", "category": "OBJECT_NOT_FOUND"}
    )
    [outcome] = await hubspot.push([PushChange(external_id="1", set_fields={"clm_nps": None})])
    assert outcome.status is PushStatus.OK
    assert [c.request.method for c in hubspot_api.calls] == ["GET"]


# -- setting up -----------------------------------------------------------------------------


async def test_ensure_properties_creates_the_group_then_enumeration_properties(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    group = hubspot_api.post("/crm/v3/properties/contacts/groups").respond(201, json={})
    create = hubspot_api.post("/crm/v3/properties/contacts").respond(201, json={})
    results = await hubspot.ensure_properties(stages=["new", "at_risk"], segments=["champions"])
    assert [(r.name, r.action) for r in results] == [
        ("clm_stage", "created"),
        ("clm_segment", "created"),
        ("clm_nps", "created"),
    ]
    assert_valid("PropertyGroupCreate", body_of(group.calls.last))
    bodies = [body_of(c) for c in create.calls]
    for body in bodies:
        assert_valid("PropertyCreate", body)
    assert [(b["name"], b["type"], b["fieldType"], b["groupName"]) for b in bodies] == [
        ("clm_stage", "enumeration", "select", "clm_hub"),
        ("clm_segment", "enumeration", "checkbox", "clm_hub"),
        ("clm_nps", "enumeration", "select", "clm_hub"),
    ]
    assert bodies[0]["options"] == [
        {"label": "New", "value": "new", "displayOrder": 1, "hidden": False},
        {"label": "At risk", "value": "at_risk", "displayOrder": 2, "hidden": False},
    ]


async def test_ensure_properties_on_409_adds_only_missing_options_keeping_the_others(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.post("/crm/v3/properties/contacts/groups").respond(409, json={})
    hubspot_api.post("/crm/v3/properties/contacts").respond(
        409, json={"status": "error", "category": "OBJECT_ALREADY_EXISTS"}
    )
    hubspot_api.get("/crm/v3/properties/contacts/clm_stage").respond(
        200, json=enum_property("clm_stage", ["legacy", "new"])
    )
    hubspot_api.get("/crm/v3/properties/contacts/clm_segment").respond(
        200, json=enum_property("clm_segment", ["champions"], "checkbox")
    )
    hubspot_api.get("/crm/v3/properties/contacts/clm_nps").respond(
        200, json=enum_property("clm_nps", ["promoter", "passive", "detractor"])
    )
    patch = hubspot_api.patch("/crm/v3/properties/contacts/clm_stage").respond(200, json={})
    results = await hubspot.ensure_properties(stages=["new", "vip"], segments=["champions"])
    assert [(r.action, r.added_options) for r in results] == [
        ("updated", ("vip",)),
        ("unchanged", ()),
        ("unchanged", ()),
    ]
    body = body_of(patch.calls.last)
    assert_valid("PropertyUpdate", body)
    assert [o["value"] for o in body["options"]] == ["legacy", "new", "vip"]


async def test_prepare_push_without_the_schema_scope_says_what_to_create_by_hand(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.post("/crm/v3/properties/contacts/groups").respond(
        403, json={"status": "error", "category": "MISSING_SCOPES"}
    )
    with pytest.raises(RequestRejected, match=r"crm\.schemas\.contacts\.write.*clm_stage: vip"):
        await hubspot.prepare_push({"clm_stage": ["vip"]})


async def test_prepare_push_refuses_a_field_the_connector_does_not_manage(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    with pytest.raises(RequestRejected, match="hub_stage, which this connector does not"):
        await hubspot.prepare_push({"hub_stage": ["vip"]})
    assert not hubspot_api.calls


# -- auth, pacing, erasure ------------------------------------------------------------------


async def test_oauth_refreshes_with_a_form_post_and_masks_the_new_token(
    make_hubspot: Factory, hubspot_api: respx.MockRouter
) -> None:
    access = "CJT-new-access-token-" + "x" * 300
    token = hubspot_api.post("/oauth/v1/token").respond(
        200, json={"access_token": access, "refresh_token": "r-1", "expires_in": 1800}
    )
    contacts = hubspot_api.get("/crm/v3/objects/contacts").respond(200, json={"results": []})
    hubspot = make_hubspot(client_id="cid", client_secret="csecret", refresh_token="r-1")
    await hubspot.check()
    form = {k: v[0] for k, v in parse_qs(token.calls.last.request.content.decode()).items()}
    assert_valid("OAuthTokenForm", form)
    assert form == {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "client_secret": "csecret",
        "refresh_token": "r-1",
    }
    assert token.calls.last.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert contacts.calls.last.request.headers["Authorization"] == f"Bearer {access}"
    assert hubspot.http.redactor.text(f"token={access}") == f"token={MASK}"


async def test_oauth_refreshes_before_each_call_once_the_token_expires(
    make_hubspot: Factory, hubspot_api: respx.MockRouter
) -> None:
    token = hubspot_api.post("/oauth/v1/token").mock(
        side_effect=[
            httpx.Response(200, json={"access_token": f"a{i}", "expires_in": 0}) for i in (1, 2)
        ]
    )
    contacts = hubspot_api.get("/crm/v3/objects/contacts").respond(200, json={"results": []})
    hubspot = make_hubspot(client_id="cid", client_secret="csecret", refresh_token="r-1")
    await hubspot.check()
    await hubspot.check()
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in contacts.calls] == [
        "Bearer a1",
        "Bearer a2",
    ]


async def test_refused_refresh_token_is_an_auth_error_naming_the_settings(
    make_hubspot: Factory, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.post("/oauth/v1/token").respond(
        400, json={"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}
    )
    hubspot = make_hubspot(client_id="cid", client_secret="csecret", refresh_token="r-1")
    with pytest.raises(AuthError, match=r"BAD_REFRESH_TOKEN.*refresh_token"):
        await hubspot.check()


def throttled(policy: str, **headers: str) -> httpx.Response:
    body = {"status": "error", "errorType": "RATE_LIMIT", "policyName": policy}
    return httpx.Response(429, json=body, headers=headers)


def test_429_wait_follows_hubspots_policy_name_and_headers() -> None:
    interval = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    assert hubspot_retry_after(throttled("SECONDLY")) == 1.0  # search: no Retry-After
    assert hubspot_retry_after(throttled("TEN_SECONDLY_ROLLING", **interval)) == 10.0
    assert hubspot_retry_after(throttled("TEN_SECONDLY_ROLLING", **{"Retry-After": "3"})) == 3.0
    assert hubspot_retry_after(throttled("DAILY")) is None


def test_limiter_follows_the_settings_and_hubspots_header_names(make_hubspot: Factory) -> None:
    hubspot = make_hubspot(tier="enterprise", headroom=0.25, search_limit_per_second=4)
    limiter = hubspot.http.limiter
    assert isinstance(limiter, HubSpotLimiter)
    assert limiter.burst.limit == 190
    assert limiter.burst.window == pytest.approx(10.0, abs=0.1)  # the SDK adds a little skew
    assert (limiter.daily.limit, limiter.daily.headroom) == (1_000_000, 0.25)
    assert limiter.search.limit == 4
    assert limiter.search.window == pytest.approx(1.0, abs=0.1)
    headers = httpx.Headers(
        {"X-HubSpot-RateLimit-Daily": "500000", "X-HubSpot-RateLimit-Daily-Remaining": "12"}
    )
    limiter.observe(httpx.Response(200, headers=headers))
    assert (limiter.daily.limit, limiter.daily.used) == (500_000, 499_988)


async def test_check_names_the_scopes_when_hubspot_answers_403(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    hubspot_api.get("/crm/v3/objects/contacts").respond(
        403, json={"status": "error", "category": "MISSING_SCOPES"}
    )
    with pytest.raises(AuthError, match=r"lacks a scope.*crm\.objects\.contacts\.read"):
        await hubspot.check()


async def test_erase_posts_gdpr_delete_per_contact_and_takes_404_as_done(
    hubspot: HubSpot, hubspot_api: respx.MockRouter
) -> None:
    route = hubspot_api.post("/crm/v3/objects/contacts/gdpr-delete").mock(
        side_effect=[httpx.Response(204), httpx.Response(404, json={"status": "error"})]
    )
    outcomes = await hubspot.erase(["51", "52"])
    assert [body_of(c) for c in route.calls] == [{"objectId": "51"}, {"objectId": "52"}]
    for call in route.calls:
        assert_valid("PublicGdprDeleteInput", body_of(call))
    assert [(o.status, o.reason) for o in outcomes] == [
        (PushStatus.OK, None),
        (PushStatus.OK, "already gone"),
    ]
