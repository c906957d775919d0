"""Which question is the NPS one, what score an answer makes, and who answered."""

from __future__ import annotations

from typing import Any

import pytest

from clm_hub_plugins.typeform.mapping import (
    NotNps,
    ResponseConverter,
    find_nps_question,
    question_for,
)
from clm_hub_plugins.typeform.settings import TypeformSettings
from clm_hub_plugins.typeform.vendor import FormDefinition, FormField, ResponseItem

Json = dict[str, Any]


def field(kind: str, ref: str = "q", **props: int | bool) -> FormField:
    return FormField.model_validate(
        {"id": f"id_{ref}", "ref": ref, "type": kind, "properties": props}
    )


def settings(**values: object) -> TypeformSettings:
    return TypeformSettings.model_validate({"token": "tfp_x", **values})


def item(answers: list[Json], hidden: Json | None = None) -> ResponseItem:
    return ResponseItem.model_validate(
        {"token": "tok", "submitted_at": "2024-05-01T09:01:10Z", "hidden": hidden or {},
         "answers": answers}
    )  # fmt: skip


def number(ref: str, value: float) -> Json:
    return {
        "field": {"id": f"id_{ref}", "ref": ref, "type": "x"},
        "type": "number",
        "number": value,
    }


def email(ref: str, value: str) -> Json:
    return {
        "field": {"id": f"id_{ref}", "ref": ref, "type": "email"},
        "type": "email",
        "email": value,
    }


def test_an_nps_question_scores_answers_as_given() -> None:
    question = question_for("F", field("nps"), rescale=False)
    assert (question.low, question.high, question.score(0), question.score(10)) == (0, 10, 0, 10)


def test_an_opinion_scale_of_eleven_steps_from_zero_is_nps() -> None:
    question = question_for(
        "F", field("opinion_scale", steps=11, start_at_one=False), rescale=False
    )
    assert question.is_nps and question.score(7) == 7


@pytest.mark.parametrize(
    ("kind", "props", "why"),
    [
        ("opinion_scale", {"steps": 10, "start_at_one": True}, "opinion_scale from 1 to 10"),
        ("opinion_scale", {"steps": 5}, "opinion_scale from 0 to 4"),
        ("rating", {"steps": 5}, "rating from 1 to 5"),
        ("short_text", {}, "of type short_text"),
    ],
)
def test_other_scales_are_refused_unless_rescaling_is_configured(
    kind: str, props: dict[str, int | bool], why: str
) -> None:
    with pytest.raises(NotNps, match=why):
        scale = FormField.model_validate({"id": "q", "type": kind, "properties": props})
        question_for("F", scale, rescale=False)


def test_a_configured_rescale_maps_a_star_rating_onto_zero_to_ten() -> None:
    question = question_for("F", field("rating", steps=5), rescale=True)
    assert [question.score(v) for v in (1, 2, 3, 4, 5)] == [0, 2, 5, 8, 10]


@pytest.mark.parametrize("value", [-1, 11, 7.5])
def test_an_answer_off_the_scale_is_an_error(value: float) -> None:
    with pytest.raises(ValueError, match="not on the question's scale 0-10"):
        question_for("F", field("nps"), rescale=False).score(value)


def test_the_question_is_found_by_ref_even_inside_a_group() -> None:
    group = {"id": "g", "type": "group", "properties": {"fields": [
        {"id": "n2", "ref": "recommend", "type": "nps"}]}}  # fmt: skip
    definition = FormDefinition.model_validate(
        {"id": "F", "fields": [{"id": "n1", "ref": "other", "type": "nps"}, group]}
    )
    assert find_nps_question(definition, ref="recommend", rescale=False).field_id == "n2"
    with pytest.raises(NotNps, match="2 nps questions"):
        find_nps_question(definition, ref=None, rescale=False)
    with pytest.raises(NotNps, match="no question with ref 'missing'"):
        find_nps_question(definition, ref="missing", rescale=False)


def converter(**values: object) -> ResponseConverter:
    return ResponseConverter(
        question_for("F", field("nps", ref="nps"), rescale=False), settings(**values)
    )


def test_hidden_fields_name_the_respondent_before_an_email_answer() -> None:
    record = converter().to_record(
        item(
            [number("nps", 9), email("contact_email", "typed@example.com")],
            {"email": " Ana@Example.com ", "customer_id": "C-42"},
        )
    )
    assert (record.customer_external_id, record.email) == ("C-42", "Ana@Example.com")
    assert (record.external_id, record.survey_id, record.score) == ("F:tok", "F", 9)


def test_without_a_hidden_email_the_email_answer_is_used() -> None:
    answers = [number("nps", 3), email("other", "x@example.com"), email("mine", "me@example.com")]
    assert converter().respondent(item(answers, {"email": "not-an-email"})).email == "x@example.com"
    chosen = converter(email_answer_ref="mine").respondent(item(answers))
    assert chosen.email == "me@example.com"
    assert converter(email_answer=False).respondent(item(answers)).email is None


def test_configured_hidden_field_names_are_read() -> None:
    who = converter(hidden_email="mail", hidden_customer_id="uid").respondent(
        item([number("nps", 9)], {"mail": "a@example.com", "uid": 77, "email": "b@example.com"})
    )
    assert (who.customer_id, who.email) == ("77", "a@example.com")


def test_a_comment_is_taken_from_the_configured_text_question() -> None:
    reason = {"field": {"id": "w", "ref": "why", "type": "long_text"}, "type": "text",
              "text": "  Fast delivery "}  # fmt: skip
    record = converter(comment_ref="why").to_record(
        item([number("nps", 10), reason], {"email": "a@example.com"})
    )
    assert record.comment == "Fast delivery"
