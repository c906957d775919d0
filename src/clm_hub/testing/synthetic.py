"""A deterministic data source, for engine tests, crash tests and benchmarks.

``Synthetic`` is a real connector (same contract as any plugin) that serves generated
contacts, orders and survey answers without a rate limit, in pages sorted by
``updated_at``, honouring the ``updated_since`` cursor. The data comes from
``SyntheticApi`` (synthetic_api.py) as JSON pages: in-process by default, or over HTTP
from ``create_app`` when ``base_url`` is set (the benchmark runs it in its own process).
Either way the connector parses and validates every page as it would a real tool's.
Everything is a pure function of the settings, so two runs with the same settings see the
same data, and nothing is held in memory beyond the current page.

Load it with ``build_plugin_registry(extra={"synthetic": clm_hub.testing.synthetic})`` or
a ``plugins_dir`` file containing ``from clm_hub.testing.synthetic import register_connectors``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import ClassVar

from clm_hub import (
    Capability,
    Connector,
    ContactRecord,
    OrderRecord,
    Page,
    RegisterConnector,
    StreamCursor,
    SurveyResponseRecord,
    hookimpl,
)
from clm_hub.connectors.http import HttpClient
from clm_hub.errors import UpstreamError
from clm_hub.records import R, parse_json_page
from clm_hub.testing.synthetic_api import (
    EPOCH,
    ApiPage,
    ApiStream,
    SyntheticApi,
    SyntheticSettings,
)

__all__ = ["EPOCH", "Synthetic", "SyntheticSettings", "iter_people", "register_connectors"]


class Synthetic(Connector[SyntheticSettings]):
    """Generated contacts, orders and NPS answers, paged by ``updated_at``."""

    name = "synthetic"
    version = "1.0.0"
    settings_model = SyntheticSettings
    default_base_url = "http://synthetic.invalid"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CONTACTS, Capability.ORDERS, Capability.SURVEY_RESPONSES}
    )

    def __init__(
        self, settings: SyntheticSettings, http: HttpClient, *, connector_id: str | None = None
    ) -> None:
        super().__init__(settings, http, connector_id=connector_id)
        self._api = SyntheticApi(settings)

    async def _fetch(self, stream: ApiStream, since: datetime | None, offset: int) -> ApiPage:
        s = self.settings
        if s.base_url is None:
            if s.fail_after_pages is not None and offset // s.page_size >= s.fail_after_pages:
                raise UpstreamError(self.connector_id, "synthetic outage (503)", status_code=503)
            return self._api.page(stream, since, offset)
        params: dict[str, str | int | float | bool] = {"offset": offset}
        if since is not None:
            params["updated_since"] = since.isoformat()
        response = await self.http.request("GET", f"/{stream}", params=params)
        cursor, more = response.headers.get("x-cursor"), response.headers.get("x-next-offset")
        return ApiPage(
            body=response.content,
            cursor=datetime.fromisoformat(cursor) if cursor else None,
            next_offset=int(more) if more else None,
        )

    async def _pages(
        self, stream: ApiStream, record_type: type[R], since: StreamCursor | None
    ) -> AsyncIterator[Page[R]]:
        threshold = since.updated_since if since is not None else None
        offset: int | None = 0
        while offset is not None:
            if self.settings.page_delay:
                await asyncio.sleep(self.settings.page_delay)
            page = await self._fetch(stream, threshold, offset)
            if page.cursor is None:  # nothing (more) to read
                return
            yield parse_json_page(
                page.body, record_type, cursor=StreamCursor(updated_since=page.cursor)
            )
            offset = page.next_offset

    def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        return self._pages("contacts", ContactRecord, since)

    def pull_orders(self, since: StreamCursor | None) -> AsyncIterator[Page[OrderRecord]]:
        return self._pages("orders", OrderRecord, since)

    def pull_survey_responses(
        self, since: StreamCursor | None
    ) -> AsyncIterator[Page[SurveyResponseRecord]]:
        return self._pages("survey_responses", SurveyResponseRecord, since)


def iter_people(settings: SyntheticSettings) -> Iterator[str]:
    """The normalised emails this source holds (for tests' expectations)."""
    for i in range(settings.contacts):
        yield f"person{settings.first_person + i}@example.com"


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    register(Synthetic)
