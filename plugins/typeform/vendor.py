"""Typeform's JSON, parsed at the edge (surveys.md section A; the OpenAPI subsets in
shared/specs). Models ignore keys they do not use, so additions on Typeform's side never
break a pull; what the connector relies on is required."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Account",
    "Answer",
    "AnswerField",
    "ErrorBody",
    "FormDefinition",
    "FormField",
    "FormList",
    "FormProperties",
    "FormSummary",
    "ResponseItem",
    "ResponsePage",
    "WebhookDelivery",
    "WebhookResponse",
    "format_since",
]

JsonObject = dict[str, Any]  # one vendor row, parsed into a model row by row


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Vendor):
    """``GET /me``: the account the token belongs to."""

    alias: str | None = None
    email: str | None = None
    language: str | None = None


class ErrorBody(_Vendor):
    """Typeform's error body: ``{"code", "description", "details": [...], "help"}``."""

    code: str | None = None
    description: str | None = None
    details: list[JsonObject] = Field(default_factory=list)


class FormProperties(_Vendor):
    """The parts of a field's ``properties`` that say what scale a question uses."""

    steps: int | None = None
    start_at_one: bool | None = None
    shape: str | None = None
    fields: list[FormField] = Field(default_factory=list)
    """Nested questions of a ``group`` / ``inline_group``."""


class FormField(_Vendor):
    """A question of a form definition."""

    id: str
    ref: str | None = None
    title: str | None = None
    type: str
    properties: FormProperties = Field(default_factory=FormProperties)

    @field_validator("properties", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return {} if value is None else value


FormProperties.model_rebuild()


class FormDefinition(_Vendor):
    """``GET /forms/{form_id}``: the questions and the declared hidden fields."""

    id: str
    title: str | None = None
    fields: list[FormField] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list)

    def all_fields(self) -> list[FormField]:
        """Every question, those inside question groups included."""
        out: list[FormField] = []
        pending = list(self.fields)
        while pending:
            field = pending.pop(0)
            out.append(field)
            pending[0:0] = field.properties.fields
        return out


class FormSummary(_Vendor):
    id: str
    title: str | None = None


class FormList(_Vendor):
    """``GET /forms?page=N&page_size=M``."""

    total_items: int = 0
    page_count: int = 0
    items: list[FormSummary] = Field(default_factory=list)


class AnswerField(_Vendor):
    id: str
    type: str | None = None
    ref: str | None = None


class Answer(_Vendor):
    """One answer; its value sits under the key named by ``type`` (``number``, ``email``...)."""

    field: AnswerField
    type: str
    number: float | None = None
    email: str | None = None
    text: str | None = None


class ResponseItem(_Vendor):
    """One response of ``GET /forms/{form_id}/responses``. Unanswered questions are absent
    from ``answers``; ``token`` is the paging cursor (``response_id`` is unique per form only)."""

    token: str = Field(min_length=1)
    submitted_at: datetime
    landed_at: datetime | None = None
    hidden: dict[str, Any] = Field(default_factory=dict)
    answers: list[Answer] = Field(default_factory=list)

    @field_validator("hidden", mode="before")
    @classmethod
    def _no_hidden(cls, value: object) -> object:
        return {} if value is None else value

    @field_validator("answers", mode="before")
    @classmethod
    def _no_answers(cls, value: object) -> object:
        return [] if value is None else value

    @field_validator("submitted_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Typeform writes UTC with a ``Z``; a timestamp without a zone is UTC as well.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ResponsePage(_Vendor):
    """A page of responses; rows stay raw so that one bad row is rejected alone."""

    total_items: int = 0
    page_count: int = 0
    items: list[JsonObject]


class WebhookResponse(ResponseItem):
    """``form_response`` of a webhook delivery: a response plus its form and definition."""

    form_id: str
    definition: FormDefinition | None = None


class WebhookDelivery(_Vendor):
    """A webhook delivery's body."""

    event_id: str = Field(min_length=1)
    event_type: str
    form_response: JsonObject | None = None


def format_since(value: datetime) -> str:
    """``since``/``until`` as Typeform takes them: UTC, to the second, ``T``-separated.

    Rounded down, as ``since`` is inclusive: reading one second early only re-reads."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
