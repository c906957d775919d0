"""A connector written against the SDK, checked at the HTTP boundary with respx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import respx

from clm_hub.plugins import build_plugin_registry
from clm_hub.records import PushChange, PushStatus, StreamCursor
from clm_hub.runtime import build_redactor, configure_connectors, open_connector
from clm_hub.settings import HubSettings
from tests.support import acme

TOKEN = "acme-token-0001"


@pytest.fixture
def connector() -> acme.Acme:
    settings = HubSettings(
        connectors={"crm": {"plugin": "acme", "account": "a1", "api_token": TOKEN}}
    )
    registry = build_plugin_registry(entry_points=False, extra={"acme": acme})
    [item] = configure_connectors(settings, registry)
    opened = open_connector(item, build_redactor([item]))
    assert isinstance(opened, acme.Acme)
    return opened


@pytest.fixture
def acme_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url="https://api.acme.test", assert_all_called=True) as router:
        yield router


def contact(i: int) -> dict[str, object]:
    return {"id": i, "email": f"p{i}@example.com", "updated_at": "2026-02-01T10:00:00+00:00"}


async def test_pull_contacts_follows_next_cursor(
    connector: acme.Acme, acme_api: respx.MockRouter
) -> None:
    # respx matches query params by inclusion, so the more specific route goes first.
    acme_api.get("/v2/contacts", params={"limit": "2", "cursor": "c2"}).respond(
        200, json={"contacts": [contact(3)], "next_cursor": None}
    )
    acme_api.get("/v2/contacts", params={"limit": "2"}).respond(
        200, json={"contacts": [contact(1), contact(2)], "next_cursor": "c2"}
    )
    pages = [page async for page in connector.pull_contacts(None)]
    assert [[r.external_id for r in p.records] for p in pages] == [["1", "2"], ["3"]]
    assert pages[0].cursor == StreamCursor(token="c2")
    assert pages[1].cursor is None
    assert all(
        call.request.headers["Authorization"] == f"Bearer {TOKEN}" for call in acme_api.calls
    )


async def test_pull_contacts_sends_the_incremental_filter(
    connector: acme.Acme, acme_api: respx.MockRouter
) -> None:
    since = StreamCursor(updated_since=datetime(2026, 2, 1, tzinfo=UTC))
    acme_api.get(
        "/v2/contacts", params={"limit": "2", "updated_since": "2026-02-01T00:00:00+00:00"}
    ).respond(200, json={"contacts": []})
    pages = [page async for page in connector.pull_contacts(since)]
    assert pages[0].records == []


async def test_malformed_contact_is_rejected_and_the_page_goes_on(
    connector: acme.Acme, acme_api: respx.MockRouter
) -> None:
    bad = {"id": 9, "email": "x@example.com", "updated_at": "yesterday"}
    acme_api.get("/v2/contacts").respond(200, json={"contacts": [contact(1), bad]})
    [page] = [page async for page in connector.pull_contacts(None)]
    assert [r.external_id for r in page.records] == ["1"]
    [rejected] = page.rejected
    assert rejected.external_id == "9"
    assert "Invalid isoformat" in rejected.reason


async def test_push_returns_one_outcome_per_record_with_partial_failures(
    connector: acme.Acme, acme_api: respx.MockRouter
) -> None:
    route = acme_api.post("/v2/contacts/tags").respond(
        200, json={"errors": [{"id": "2", "message": "contact is archived"}]}
    )
    outcomes = await connector.push(
        [
            PushChange(external_id="1", add_tags=frozenset({"clm:stage:new"})),
            PushChange(external_id="2", remove_tags=frozenset({"clm:stage:new"})),
        ]
    )
    assert [(o.external_id, o.status, o.reason) for o in outcomes] == [
        ("1", PushStatus.OK, None),
        ("2", PushStatus.FAILED, "contact is archived"),
    ]
    assert route.calls.last.request.content == (
        b'{"updates":[{"id":"1","add":["clm:stage:new"],"remove":[]},'
        b'{"id":"2","add":[],"remove":["clm:stage:new"]}]}'
    )
