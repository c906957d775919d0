"""The Typeform connector: NPS answers in, per respondent, from the forms it is given.

The work is split by concern: ``reading.py`` pages responses with per-form cursors,
``mapping.py`` finds the NPS question and the respondent, ``webhooks.py`` verifies
deliveries, ``api.py`` turns Typeform's error bodies into the hub's typed errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import httpx
from pydantic import ValidationError

from clm_hub import (
    Capability,
    Connector,
    Page,
    PushOutcome,
    PushStatus,
    StreamCursor,
    SurveyResponseRecord,
    WebhookEvent,
    WebhookRequest,
)
from clm_hub.connectors import HttpClient, HttpOptions, SlidingWindow
from clm_hub.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    MalformedResponse,
    RateLimited,
    UpstreamError,
)

from .api import Api, typeform_error
from .cursor import FormCursors
from .mapping import NotNps, NpsQuestion, ResponseConverter, find_nps_question
from .reading import FormToRead, Reader
from .settings import DEFAULT_BASE_URL, TypeformSettings
from .vendor import Account, ResponseItem, ResponsePage, WebhookResponse
from .webhooks import SignatureProblem, parse_delivery, parse_form_response, verify

__all__ = ["DELETE_LIMIT", "GUEST_PREFIX", "Typeform"]

DELETE_LIMIT = 1000
"""Tokens per ``DELETE /forms/{form_id}/responses`` call."""
GUEST_PREFIX = "guest:"
"""How the hub names a respondent known by email only (a record without a customer id)."""


class Typeform(Connector[TypeformSettings]):
    """Typeform (Responses and Create APIs): NPS answers in, linked to the respondent by
    hidden fields or an email answer; GDPR erasure of a person's responses."""

    name = "typeform"
    version = "0.1.0"
    settings_model = TypeformSettings
    default_base_url = DEFAULT_BASE_URL
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.SURVEY_RESPONSES, Capability.WEBHOOKS, Capability.ERASE}
    )

    def __init__(
        self, settings: TypeformSettings, http: HttpClient, *, connector_id: str | None = None
    ) -> None:
        super().__init__(settings, http, connector_id=connector_id)
        self.api = Api(http, self.connector_id)
        self.reader = Reader(self.api, settings, self.log)

    @classmethod
    def http_options(cls, settings: TypeformSettings) -> HttpOptions:
        """Bearer token, the region's host, and Typeform's 2 requests per second."""
        return HttpOptions(
            base_url=settings.host,
            headers={
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Accept": "application/json",
            },
            # 2 requests/second per account for the Create and Responses APIs; 429s carry
            # Retry-After when Typeform sends one (the client's default reading), else the
            # client backs off exponentially.
            limiter=SlidingWindow(settings.requests_per_second, 1.0),
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds)
            ),
        )

    async def check(self) -> None:
        """``GET /me``: the cheapest authenticated call; the error names what to fix."""
        await self.api.get("/me", Account)

    # -- pulling --------------------------------------------------------------------------

    async def pull_survey_responses(
        self, since: StreamCursor | None
    ) -> AsyncIterator[Page[SurveyResponseRecord]]:
        """NPS answers submitted since ``since`` (every answer when ``None``), form by
        form; responses without an identity or with an invalid score are rejected with the
        reason, responses that left the NPS question unanswered are skipped."""
        cursors = FormCursors.decode(since)
        forms = await self.reader.forms()
        cursors.keep_only({form.form_id for form in forms})
        for form in forms:
            async for page in self.reader.pull(form, cursors):
                yield page

    # -- webhooks -------------------------------------------------------------------------

    async def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        """Verify ``Typeform-Signature`` and turn a ``form_response`` into its NPS record.

        Deliveries for forms not read, other event types and responses that left the NPS
        question unanswered are acknowledged without records."""
        secret = self.settings.webhook_secret
        if secret is None:
            raise ConfigError(
                f"{self.connector_id}: set webhook_secret (the secret given when registering "
                "the Typeform webhook) to verify deliveries"
            )
        try:
            verify(secret=secret.get_secret_value(), body=request.body, headers=request.headers)
        except SignatureProblem as exc:
            raise AuthError(self.connector_id, f"webhook delivery rejected: {exc}") from None
        try:
            delivery = parse_delivery(request.body)
            response = (
                parse_form_response(delivery) if delivery.event_type == "form_response" else None
            )
        except ValueError as exc:
            raise MalformedResponse(self.connector_id, str(exc)) from None
        event = WebhookEvent(event_id=delivery.event_id)
        if response is None:
            self.log.info("typeform.webhook.ignored", event_type=delivery.event_type)
            return event
        if self.settings.forms != "all" and response.form_id not in self.settings.forms:
            self.log.info("typeform.webhook.ignored", form_id=response.form_id, reason="form")
            return event
        question = await self._webhook_question(response)
        if question is None:
            return event
        converter = ResponseConverter(question, self.settings)
        if converter.nps_answer(response) is None:
            return event
        try:
            record = converter.to_record(response)
        except ValueError as exc:
            # WebhookEvent has no place for rejections: the next pull rejects it for good.
            self.log.warning("typeform.webhook.rejected", form_id=response.form_id, reason=str(exc))
            return event
        return event.model_copy(update={"survey_responses": (record,)})

    async def _webhook_question(self, response: WebhookResponse) -> NpsQuestion | None:
        """The NPS question from the delivery's definition when it is an ``nps`` question
        (no request needed); else from the form's definition, read through the API."""
        if response.definition is not None:
            try:
                question = find_nps_question(
                    response.definition,
                    ref=self.settings.nps_ref,
                    rescale=self.settings.rescale_other_scales,
                )
            except NotNps:
                question = None
            if question is not None and question.kind == "nps":
                return question
        try:
            return await self.reader.question(response.form_id)
        except NotNps as exc:
            self.log.warning("typeform.webhook.ignored", form_id=response.form_id, reason=str(exc))
            return None

    # -- erasure --------------------------------------------------------------------------

    async def erase(self, external_ids: Sequence[str]) -> Sequence[PushOutcome]:
        """Delete every response of each person from every form read, through
        ``DELETE /forms/{form_id}/responses?included_tokens=`` (needs ``responses:write``).

        The hub names people by the ids this connector gave them: the hidden customer id,
        or ``guest:<email>``. Responses are found with ``query=`` (a free-text search over
        answers and hidden fields) and deleted only when their respondent matches exactly.
        """
        try:
            forms = await self.reader.forms()
        except ConnectorError as exc:
            return [self._failed(i, exc) for i in external_ids]
        outcomes: list[PushOutcome] = []
        for external_id in external_ids:
            try:
                erased = 0
                for form in forms:
                    erased += await self._erase_in_form(form, external_id)
            except ConnectorError as exc:
                outcomes.append(self._failed(external_id, exc))
                continue
            self.log.info("typeform.erased", responses=erased)
            outcomes.append(PushOutcome(external_id=external_id, status=PushStatus.OK))
        return outcomes

    async def _erase_in_form(self, form: FormToRead, external_id: str) -> int:
        email = external_id.removeprefix(GUEST_PREFIX).casefold()
        by_email = external_id.startswith(GUEST_PREFIX)
        converter = ResponseConverter(form.question, self.settings)
        tokens: list[str] = []
        before: str | None = None
        while True:
            params: dict[str, str | int] = {
                "query": email if by_email else external_id,
                "page_size": self.settings.page_size,
            }
            if before is not None:
                params["before"] = before
            page = await self.api.get(
                f"/forms/{form.form_id}/responses", ResponsePage, params=params
            )
            for row in page.items:
                try:
                    item = ResponseItem.model_validate(row)
                except ValidationError:
                    continue  # a row the pull rejects: nothing of it reached the hub
                who = converter.respondent(item)
                if (by_email and (who.email or "").strip().casefold() == email) or (
                    not by_email and who.customer_id == external_id
                ):
                    tokens.append(item.token)
            if len(page.items) < self.settings.page_size:
                break
            before = str(page.items[-1]["token"])
        for start in range(0, len(tokens), DELETE_LIMIT):
            chunk = tokens[start : start + DELETE_LIMIT]
            await self.api.send(
                "DELETE",
                f"/forms/{form.form_id}/responses",
                params={"included_tokens": ",".join(chunk)},
            )
        return len(tokens)

    @staticmethod
    def _failed(external_id: str, exc: ConnectorError) -> PushOutcome:
        retry = isinstance(exc, RateLimited | UpstreamError | MalformedResponse)
        return PushOutcome(
            external_id=external_id,
            status=PushStatus.RETRY if retry else PushStatus.FAILED,
            reason=typeform_error(exc)[:500],
        )
