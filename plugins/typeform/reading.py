"""Reading survey responses form by form, with the two documented paging recipes.

- **Incremental** (a form with a cursor; surveys.md A3, Airbyte's recipe): the first page
  asks ``since=<cursor - overlap>&sort=submitted_at,asc&page_size=N``; the following pages
  drop ``sort`` (Typeform refuses it together with a token) and send ``after=<token of the
  last response>``, keeping ``since``, until a page comes back empty. ``since`` is
  inclusive, so the boundary response is read again each run: responses are deduplicated
  by token within a run and are unchanged rows for the store across runs.
- **Full backfill** (a form without a cursor; the official JS SDK's recipe): ``page_size=N``
  without ``sort``, then ``before=<token of the last response>``, newest to oldest, until a
  page holds fewer than N responses. Its cursor is stored with the form's last page only,
  since a resume in the middle of a newest-first walk would skip the older answers.

Never ``page=N``: Typeform does not page responses by number.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from clm_hub import Page, SurveyResponseRecord
from clm_hub.connectors import Fetched, paginate
from clm_hub.errors import ConfigError, MalformedResponse

from .api import Api
from .cursor import FormCursors
from .mapping import NotNps, NpsQuestion, ResponseConverter, find_nps_question
from .settings import TypeformSettings
from .vendor import FormDefinition, FormList, JsonObject, ResponsePage, format_since

__all__ = ["FormToRead", "Reader"]

Rows = list[JsonObject]
DEFINITION_TTL_S = 600.0


@dataclass(frozen=True)
class FormToRead:
    """A form whose responses are read, with its NPS question."""

    form_id: str
    question: NpsQuestion


class Reader:
    """Pulls the configured forms' responses as pages of survey records."""

    def __init__(
        self,
        api: Api,
        settings: TypeformSettings,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.api = api
        self.settings = settings
        self.log = log
        self._definitions: dict[str, tuple[float, FormDefinition]] = {}

    # -- which forms ----------------------------------------------------------------------

    async def definition(self, form_id: str) -> FormDefinition:
        """``GET /forms/{form_id}``, read once per form and run (a webhook receiver keeps
        its connector open for long, so a definition is read again after a while)."""
        cached = self._definitions.get(form_id)
        if cached is None or time.monotonic() - cached[0] > DEFINITION_TTL_S:
            definition = await self.api.get(f"/forms/{form_id}", FormDefinition)
            cached = self._definitions[form_id] = (time.monotonic(), definition)
        return cached[1]

    async def form_ids(self) -> list[str]:
        """The listed forms, or every form of the account (``GET /forms`` by page)."""
        if self.settings.forms != "all":
            return list(self.settings.forms)
        ids: list[str] = []
        page = 1
        while True:
            body = await self.api.get(
                "/forms",
                FormList,
                params={"page": page, "page_size": self.settings.forms_page_size},
            )
            ids.extend(form.id for form in body.items)
            if not body.items or page >= body.page_count:
                return list(dict.fromkeys(ids))
            page += 1

    async def question(self, form_id: str) -> NpsQuestion:
        """The form's NPS question; ``NotNps`` when it has no usable one."""
        return find_nps_question(
            await self.definition(form_id),
            ref=self.settings.nps_ref,
            rescale=self.settings.rescale_other_scales,
        )

    async def forms(self) -> list[FormToRead]:
        """Every form to read with its NPS question, resolved before any response is read
        so a configuration error surfaces at once. A listed form without a usable NPS
        question is a ``ConfigError``; with ``forms = "all"`` such forms are skipped."""
        out: list[FormToRead] = []
        for form_id in await self.form_ids():
            try:
                out.append(FormToRead(form_id, await self.question(form_id)))
            except NotNps as exc:
                if self.settings.forms != "all":
                    raise ConfigError(f"{self.api.connector_id}: {exc}") from None
                self.log.info("typeform.form.skipped", form_id=form_id, reason=str(exc))
        return out

    # -- responses ------------------------------------------------------------------------

    async def _page(self, form_id: str, params: dict[str, str | int]) -> Rows:
        body = await self.api.get(f"/forms/{form_id}/responses", ResponsePage, params=params)
        return body.items

    def _last_token(self, form_id: str, rows: Rows) -> str:
        token = rows[-1].get("token")
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                self.api.connector_id,
                f"GET /forms/{form_id}/responses: the last response has no token, so the "
                "next page cannot be asked for",
            )
        return token

    async def pull(
        self, form: FormToRead, cursors: FormCursors
    ) -> AsyncIterator[Page[SurveyResponseRecord]]:
        """Every response of ``form`` since its cursor, page by page; ``cursors`` advances."""
        overlap = timedelta(minutes=self.settings.overlap_minutes)
        since = cursors.since(form.form_id, overlap)
        converter = ResponseConverter(form.question, self.settings)
        pages = self._backfill(form.form_id) if since is None else self._since(form.form_id, since)
        seen: set[str] = set()
        newest: datetime | None = None
        skipped = read = 0
        async for rows, last in pages:
            converted = converter.convert(_unseen(rows, seen))
            if converted.newest is not None:
                newest = converted.newest if newest is None else max(newest, converted.newest)
            if since is not None or last:
                # A backfill's cursor moves only once the whole form is read.
                cursors.advance(form.form_id, newest)
            skipped += converted.skipped
            read += len(rows)
            yield converted.page(cursors.to_cursor())
        self.log.info(
            "typeform.form.read", form_id=form.form_id, mode="backfill" if since is None
            else "incremental", responses=read, unanswered_nps=skipped,
        )  # fmt: skip

    async def _since(self, form_id: str, since: datetime) -> AsyncIterator[tuple[Rows, bool]]:
        size = self.settings.page_size

        async def fetch(after: str | None) -> Fetched[Rows, str]:
            params: dict[str, str | int] = {"since": format_since(since), "page_size": size}
            if after is None:
                params["sort"] = "submitted_at,asc"
            else:
                params["after"] = after
            rows = await self._page(form_id, params)
            return Fetched(rows, self._last_token(form_id, rows) if rows else None)

        async for fetched in paginate(fetch, connector=self.api.connector_id):
            yield fetched.items, fetched.next_token is None

    async def _backfill(self, form_id: str) -> AsyncIterator[tuple[Rows, bool]]:
        size = self.settings.page_size

        async def fetch(before: str | None) -> Fetched[Rows, str]:
            params: dict[str, str | int] = {"page_size": size}
            if before is not None:
                params["before"] = before
            rows = await self._page(form_id, params)
            full = len(rows) >= size
            return Fetched(rows, self._last_token(form_id, rows) if full else None)

        async for fetched in paginate(fetch, connector=self.api.connector_id):
            yield fetched.items, fetched.next_token is None


def _unseen(rows: Sequence[JsonObject], seen: set[str]) -> Rows:
    """Rows whose token was not yielded before in this run (overlapping pages)."""
    out: Rows = []
    for row in rows:
        token = row.get("token")
        if isinstance(token, str):
            if token in seen:
                continue
            seen.add(token)
        out.append(row)
    return out
