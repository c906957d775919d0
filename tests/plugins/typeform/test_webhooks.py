"""Typeform webhook deliveries: signatures (surveys.md A6), records, and replays."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine, func, select

import clm_hub_plugins.typeform as typeform_plugin
from clm_hub.errors import AuthError, ConfigError, MalformedResponse
from clm_hub.ingest import PageWriter
from clm_hub.linking import customer_t, response_t
from clm_hub.plugins import build_plugin_registry
from clm_hub.records import now_utc
from clm_hub.redaction import Redactor
from clm_hub.settings import HubSettings
from clm_hub.store import upgrade
from clm_hub.webhooks import WebhookOutcome, WebhookReceiver
from clm_hub_plugins.typeform import Typeform
from clm_hub_plugins.typeform.simstate import TypeformState
from clm_hub_plugins.typeform.simulator import delivery, webhook_body
from clm_hub_plugins.typeform.webhooks import SIGNATURE_HEADER, sign

from .conftest import SECRET, TOKEN, Factory

FORM = "NpsForm01"


@pytest.fixture
def account(state: TypeformState) -> TypeformState:
    state.add_form(FORM)
    return state


@pytest.fixture
def typeform(sim: Factory) -> Typeform:
    return sim(forms=[FORM], webhook_secret=SECRET)


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"event_id":"01HX","event_type":"form_response"}'
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    assert sign(SECRET, body) == "sha256=" + base64.b64encode(digest).decode()


async def test_a_signed_delivery_becomes_the_respondents_nps_record(
    typeform: Typeform, account: TypeformState
) -> None:
    token = account.add_response(
        FORM, score=6, email="ana@example.com", customer_id="C-42", comment="Slow"
    )
    event = await typeform.parse_webhook(
        delivery(account, FORM, token, secret=SECRET, event_id="E1")
    )
    assert event.event_id == "E1"
    [record] = event.survey_responses
    assert (record.external_id, record.score, record.customer_external_id, record.email) == (
        f"{FORM}:{token}", 6, "C-42", "ana@example.com",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing Typeform-Signature header"),
        ({SIGNATURE_HEADER: sign("another-secret", b"x")}, "signature does not match"),
        ({SIGNATURE_HEADER: "sha256=" + "00" * 32}, "signature does not match"),
        ({SIGNATURE_HEADER: hashlib.sha256(b"x").hexdigest()}, "not of the form sha256="),
    ],
)
async def test_unsigned_and_forged_deliveries_are_refused(
    typeform: Typeform, account: TypeformState, headers: dict[str, str], why: str
) -> None:
    token = account.add_response(FORM, score=9, email="ana@example.com")
    genuine = delivery(account, FORM, token, secret=SECRET)
    forged = genuine.model_copy(update={"headers": {"content-type": "application/json", **headers}})
    with pytest.raises(AuthError, match=why):
        await typeform.parse_webhook(forged)


async def test_a_body_changed_after_signing_is_refused(
    typeform: Typeform, account: TypeformState
) -> None:
    token = account.add_response(FORM, score=2, email="ana@example.com")
    genuine = delivery(account, FORM, token, secret=SECRET)
    tampered = genuine.model_copy(
        update={"body": genuine.body.replace(b'"number":2', b'"number":10')}
    )
    with pytest.raises(AuthError, match="signature does not match"):
        await typeform.parse_webhook(tampered)


async def test_without_a_webhook_secret_deliveries_are_not_trusted(
    sim: Factory, account: TypeformState
) -> None:
    token = account.add_response(FORM, score=9, email="ana@example.com")
    with pytest.raises(ConfigError, match="set webhook_secret"):
        await sim(forms=[FORM]).parse_webhook(delivery(account, FORM, token, secret=SECRET))


async def test_deliveries_without_an_nps_answer_or_for_other_forms_carry_no_records(
    typeform: Typeform, account: TypeformState
) -> None:
    other = account.add_form("Other1")
    skipped = account.add_response(FORM, score=None, email="ana@example.com")
    foreign = account.add_response(other, score=9, email="ana@example.com")
    for form, token in ((FORM, skipped), (other, foreign)):
        event = await typeform.parse_webhook(delivery(account, form, token, secret=SECRET))
        assert event.survey_responses == ()


async def test_a_body_that_is_not_typeforms_json_is_malformed(
    typeform: Typeform, account: TypeformState
) -> None:
    token = account.add_response(FORM, score=9, email="ana@example.com")
    with pytest.raises(MalformedResponse):
        await typeform.parse_webhook(delivery(account, FORM, token, secret=SECRET, body=b"[1,"))


async def test_a_rating_question_is_read_from_the_forms_definition(
    sim: Factory, account: TypeformState
) -> None:
    account.add_form("Stars1", nps_type="rating", steps=5)
    token = account.add_response("Stars1", score=4, email="ana@example.com")
    connector = sim(
        forms=["Stars1"], webhook_secret=SECRET, nps_ref="nps_score", rescale_other_scales=True
    )
    event = await connector.parse_webhook(delivery(account, "Stars1", token, secret=SECRET))
    assert [r.score for r in event.survey_responses] == [8]
    assert len(account.calls("/forms/Stars1")) == 1  # the delivery lacks the steps


# -- through the hub's receiver ---------------------------------------------------------------


@pytest.fixture
async def receiver(
    engine: Engine, account: TypeformState, sim_url: str
) -> AsyncIterator[WebhookReceiver]:
    upgrade(engine)
    table = {"plugin": "typeform", "base_url": sim_url, "token": TOKEN, "forms": [FORM],
             "webhook_secret": SECRET, "requests_per_second": 10_000}  # fmt: skip
    settings = HubSettings(connectors={"surveys": table})
    registry = build_plugin_registry(entry_points=False, extra={"typeform": typeform_plugin})
    made = WebhookReceiver(
        settings, registry, engine, PageWriter(engine, now=now_utc), redactor=Redactor(),
        on_ingested=lambda _, dirty: None,
    )  # fmt: skip
    yield made
    await made.aclose()


async def test_a_replayed_delivery_is_acknowledged_once_and_stored_once(
    receiver: WebhookReceiver, account: TypeformState, engine: Engine
) -> None:
    token = account.add_response(FORM, score=10, email="Ana@Example.com", customer_id="C-42")
    body = webhook_body(account, FORM, token, event_id="01HXYZ")
    first = await receiver.receive(
        "surveys", delivery(account, FORM, token, secret=SECRET, body=body)
    )
    again = await receiver.receive(
        "surveys", delivery(account, FORM, token, secret=SECRET, body=body)
    )
    forged = await receiver.receive(
        "surveys", delivery(account, FORM, token, secret="guess", event_id="01HXZZ")
    )
    assert (first.outcome, again.outcome, forged.outcome) == (
        WebhookOutcome.ACCEPTED, WebhookOutcome.DUPLICATE, WebhookOutcome.UNAUTHORIZED,
    )  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(
            select(response_t.c.external_id, response_t.c.score, customer_t.c.email).join(
                customer_t, customer_t.c.id == response_t.c.customer_id
            )
        ).all()
        count = conn.execute(select(func.count()).select_from(response_t)).scalar_one()
    assert rows == [(f"{FORM}:{token}", 10, "ana@example.com")] and count == 1
