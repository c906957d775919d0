"""GDPR erasure in Typeform: a person's responses, found by search, deleted by token."""

from __future__ import annotations

from urllib.parse import parse_qs

from clm_hub import PushStatus
from clm_hub_plugins.typeform.simstate import DEFAULT_TOKEN, TypeformState

from .conftest import Factory

FORMS = ["NpsForm01", "NpsForm02"]


def seed(state: TypeformState) -> dict[str, list[str]]:
    for form in FORMS:
        state.add_form(form)
    return {
        "ana": [
            state.add_response(FORMS[0], score=9, email="ana@example.com", customer_id="C-42"),
            state.add_response(FORMS[1], score=8, customer_id="C-42"),
        ],
        "bob": [state.add_response(FORMS[1], score=3, email_answer="Bob@Example.com")],
        # Mentions Ana's id in a hidden email, but is not Ana: search finds it, the exact
        # identity check keeps it.
        "other": [state.add_response(FORMS[0], score=5, email="c-42@example.com")],
    }


async def test_erase_deletes_exactly_the_persons_responses_in_every_form(
    sim: Factory, state: TypeformState
) -> None:
    tokens = seed(state)
    outcomes = await sim(forms=FORMS).erase(["C-42", "guest:bob@example.com"])
    assert [(o.external_id, o.status) for o in outcomes] == [
        ("C-42", PushStatus.OK), ("guest:bob@example.com", PushStatus.OK),
    ]  # fmt: skip
    left = {r.token for form in FORMS for r in state.live_responses(form)}
    assert left == set(tokens["other"])
    deletes = [r for form in FORMS for r in state.calls(f"/forms/{form}/responses", "DELETE")]
    deleted = sorted(t for r in deletes for t in parse_qs(r.query)["included_tokens"][0].split(","))
    assert deleted == sorted(tokens["ana"] + tokens["bob"])


async def test_a_token_without_write_scope_fails_each_person_with_the_reason(
    sim: Factory, state: TypeformState
) -> None:
    seed(state)
    state.tokens[DEFAULT_TOKEN] = frozenset({"forms:read", "responses:read"})
    [outcome] = await sim(forms=FORMS).erase(["C-42"])
    assert outcome.status is PushStatus.FAILED
    assert outcome.reason is not None and "Missing scope responses:write" in outcome.reason
    assert len(state.live_responses(FORMS[0])) == 2
