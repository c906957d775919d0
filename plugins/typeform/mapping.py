"""From Typeform responses to survey records: which question is the NPS one, who answered.

The NPS question is found once per form in its definition (surveys.md A4): by ``ref`` when
configured, else the form's one question of type ``nps``. Only 0-10 scales are NPS (an
``nps`` question, or an ``opinion_scale`` of 11 steps starting at 0); other scales are used
only when the settings allow rescaling them. The respondent is taken from the hidden
fields (customer id, email), then from an email answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from clm_hub import Page, Rejection, StreamCursor, SurveyResponseRecord, parse_page

from .settings import TypeformSettings
from .vendor import Answer, FormDefinition, FormField, JsonObject, ResponseItem

__all__ = [
    "Converted",
    "NotNps",
    "NpsQuestion",
    "Respondent",
    "ResponseConverter",
    "external_id",
    "find_nps_question",
    "question_for",
]

NPS_LOW, NPS_HIGH = 0, 10
MAX_COMMENT = 4000


class NotNps(ValueError):
    """A form's question cannot serve as the NPS question; the message says why."""


@dataclass(frozen=True)
class NpsQuestion:
    """The question of one form whose answers become NPS scores, and its scale."""

    form_id: str
    field_id: str
    ref: str | None
    kind: str
    low: int
    high: int

    @property
    def is_nps(self) -> bool:
        """Whether answers are already 0-10 (else they are rescaled)."""
        return (self.low, self.high) == (NPS_LOW, NPS_HIGH)

    def matches(self, answer: Answer) -> bool:
        return answer.field.id == self.field_id or (
            self.ref is not None and answer.field.ref == self.ref
        )

    def score(self, value: float | None) -> int:
        """The 0-10 score of an answer; ``ValueError`` when it is not on the scale."""
        if value is None:
            raise ValueError(f"the {self.kind} answer has no number")
        if value != int(value) or not self.low <= value <= self.high:
            raise ValueError(
                f"the {self.kind} answer {value:g} is not on the question's scale "
                f"{self.low}-{self.high}"
            )
        if self.is_nps:
            return int(value)
        return round((int(value) - self.low) * NPS_HIGH / (self.high - self.low))


def question_for(form_id: str, field: FormField, *, rescale: bool) -> NpsQuestion:
    """The NPS question ``field`` makes, or ``NotNps`` saying why it cannot be one."""
    name = f"question {field.ref or field.id!r} of form {form_id}"
    props = field.properties
    if field.type == "nps":
        return NpsQuestion(form_id, field.id, field.ref, "nps", NPS_LOW, NPS_HIGH)
    if field.type in ("opinion_scale", "rating"):
        if props.steps is None or props.steps < 2:
            raise NotNps(f"{name} is an {field.type} without a number of steps")
        # Ratings (stars) always start at 1; opinion scales at 0 unless start_at_one.
        low = 1 if field.type == "rating" or props.start_at_one else 0
        high = low + props.steps - 1
        question = NpsQuestion(form_id, field.id, field.ref, field.type, low, high)
        if question.is_nps or rescale:
            return question
        raise NotNps(
            f"{name} is an {field.type} from {low} to {high}, not a 0-10 NPS scale; point "
            "nps_ref at an NPS question, or set rescale_other_scales = true"
        )
    raise NotNps(f"{name} is of type {field.type}, not an NPS or scale question")


def find_nps_question(definition: FormDefinition, *, ref: str | None, rescale: bool) -> NpsQuestion:
    """The form's NPS question: the one with ``ref``, else its one ``nps`` question."""
    fields = definition.all_fields()
    if ref is not None:
        matches = [f for f in fields if f.ref == ref]
        if not matches:
            raise NotNps(f"form {definition.id} has no question with ref {ref!r} (nps_ref)")
    else:
        matches = [f for f in fields if f.type == "nps"]
        if not matches:
            raise NotNps(
                f"form {definition.id} has no question of type nps; set nps_ref to the ref "
                "of its recommendation question"
            )
        if len(matches) > 1:
            refs = ", ".join(repr(f.ref or f.id) for f in matches)
            raise NotNps(
                f"form {definition.id} has {len(matches)} nps questions ({refs}); set nps_ref "
                "to the one to read"
            )
    return question_for(definition.id, matches[0], rescale=rescale)


@dataclass(frozen=True)
class Respondent:
    """Who answered, as far as the response tells."""

    customer_id: str | None
    email: str | None


def external_id(form_id: str, token: str) -> str:
    """A response's id in the hub: tokens are unique per form only."""
    return f"{form_id}:{token}"


def _hidden(item: ResponseItem, name: str | None) -> str | None:
    if name is None:
        return None
    value = item.hidden.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _looks_like_email(value: str | None) -> bool:
    # Hidden values are whatever the share link carried; the hub normalises real addresses.
    return value is not None and "@" in value.strip("@") and " " not in value


@dataclass(frozen=True)
class Converted:
    """One page's rows sorted: records, rejections with their reason, skipped rows, and
    the newest ``submitted_at`` among the rows that parse (rejected or not)."""

    records: Sequence[SurveyResponseRecord]
    rejected: Sequence[Rejection]
    skipped: int
    newest: datetime | None

    def page(self, cursor: StreamCursor | None) -> Page[SurveyResponseRecord]:
        return Page[SurveyResponseRecord](
            records=self.records, rejected=self.rejected, cursor=cursor
        )


class ResponseConverter:
    """Turns one form's responses into ``SurveyResponseRecord``s."""

    def __init__(self, question: NpsQuestion, settings: TypeformSettings) -> None:
        self.question = question
        self.settings = settings

    def respondent(self, item: ResponseItem) -> Respondent:
        """Hidden customer id and email first, then an email answer."""
        s = self.settings
        customer_id = _hidden(item, s.hidden_customer_id)
        email = _hidden(item, s.hidden_email)
        if not _looks_like_email(email):
            email = None
        if email is None and s.email_answer:
            for answer in item.answers:
                if answer.type != "email" or not _looks_like_email(answer.email):
                    continue
                if s.email_answer_ref is None or answer.field.ref == s.email_answer_ref:
                    email = answer.email
                    break
        return Respondent(customer_id, email)

    def nps_answer(self, item: ResponseItem) -> Answer | None:
        """The answer to the NPS question; ``None`` when it was not answered (Typeform
        leaves unanswered questions out)."""
        return next((a for a in item.answers if self.question.matches(a)), None)

    def comment(self, item: ResponseItem) -> str | None:
        ref = self.settings.comment_ref
        if ref is None:
            return None
        for answer in item.answers:
            if answer.field.ref == ref and answer.text and answer.text.strip():
                return answer.text.strip()[:MAX_COMMENT]
        return None

    def to_record(self, item: ResponseItem) -> SurveyResponseRecord:
        """The record of an answered response; ``ValueError`` with the reason otherwise."""
        answer = self.nps_answer(item)
        if answer is None:
            raise ValueError("the NPS question was not answered")
        who = self.respondent(item)
        if who.customer_id is None and who.email is None:
            raise ValueError(self._no_identity())
        return SurveyResponseRecord(
            external_id=external_id(self.question.form_id, item.token),
            customer_external_id=who.customer_id,
            email=who.email,
            survey_id=self.question.form_id,
            score=self.question.score(answer.number),
            answered_at=item.submitted_at,
            comment=self.comment(item),
        )

    def _no_identity(self) -> str:
        s = self.settings
        places = [
            f"hidden field {name!r}"
            for name in (s.hidden_customer_id, s.hidden_email)
            if name is not None
        ]
        if s.email_answer:
            places.append("an email answer")
        return f"no respondent identity: nothing in {' or '.join(places)}"

    def convert(self, rows: Sequence[JsonObject]) -> Converted:
        """Records and rejections for ``rows``, each row parsed once; a response whose NPS
        question was left unanswered is skipped (not an error: the respondent chose not
        to answer)."""
        answered: list[tuple[JsonObject, ResponseItem | ValidationError]] = []
        skipped = 0
        newest: datetime | None = None
        for row in rows:
            try:
                item = ResponseItem.model_validate(row)
            except ValidationError as exc:
                answered.append((row, exc))  # rejected with its reason by parse_page below
                continue
            newest = item.submitted_at if newest is None else max(newest, item.submitted_at)
            if self.nps_answer(item) is None:
                skipped += 1
            else:
                answered.append((row, item))
        form_id = self.question.form_id

        def convert(
            pair: tuple[JsonObject, ResponseItem | ValidationError],
        ) -> SurveyResponseRecord:
            parsed = pair[1]
            if isinstance(parsed, ValidationError):
                raise parsed
            return self.to_record(parsed)

        def ident(pair: tuple[JsonObject, ResponseItem | ValidationError]) -> str | None:
            token = pair[0].get("token")
            return external_id(form_id, token) if isinstance(token, str) and token else None

        page = parse_page(
            answered, convert, external_id=ident, describe=lambda pair: _describe(pair[0])
        )
        return Converted(page.records, page.rejected, skipped, newest)


def _describe(row: JsonObject) -> str:
    return json.dumps(row, sort_keys=True, default=str)
