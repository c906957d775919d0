"""A small but complete connector used by the tests, written as a plugin author would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

from pydantic import SecretStr

from clm_hub import (
    Capability,
    Connector,
    ConnectorSettings,
    ContactRecord,
    Page,
    PushChange,
    PushOutcome,
    PushStatus,
    RegisterConnector,
    StreamCursor,
    hookimpl,
    parse_page,
)
from clm_hub.connectors import Fetched, HttpOptions, SlidingWindow, WindowHeaders, paginate


class AcmeSettings(ConnectorSettings):
    account: str
    api_token: SecretStr
    page_size: int = 2


class Acme(Connector[AcmeSettings]):
    """Acme CRM: contacts in (cursor paging), tags out (batches of 2)."""

    name = "acme"
    version = "1.2.3"
    settings_model = AcmeSettings
    default_base_url = "https://api.acme.test"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CONTACTS, Capability.TAG_PUSH}
    )
    max_push_batch = 2

    @classmethod
    def http_options(cls, settings: AcmeSettings) -> HttpOptions:
        return HttpOptions(
            base_url=settings.base_url or cls.default_base_url,
            headers={"Authorization": f"Bearer {settings.api_token.get_secret_value()}"},
            limiter=SlidingWindow(
                10, 1.0, headers=WindowHeaders(remaining="X-RateLimit-Remaining")
            ),
        )

    async def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        params: dict[str, str | int] = {"limit": self.settings.page_size}
        if since and since.updated_since:
            params["updated_since"] = since.updated_since.isoformat()

        async def fetch(token: str | None) -> Fetched[list[dict[str, Any]], str]:
            query = {**params, **({"cursor": token} if token else {})}
            body = await self.http.json("GET", "/v2/contacts", params=query)
            return Fetched(body["contacts"], body.get("next_cursor"))

        async for fetched in paginate(fetch, connector=self.connector_id):
            yield parse_page(
                fetched.items,
                _contact,
                external_id=lambda row: row.get("id"),
                cursor=StreamCursor(token=fetched.next_token) if fetched.next_token else None,
            )

    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        body = await self.http.json(
            "POST",
            "/v2/contacts/tags",
            json={
                "updates": [
                    {
                        "id": c.external_id,
                        "add": sorted(c.add_tags),
                        "remove": sorted(c.remove_tags),
                    }
                    for c in changes
                ]
            },
        )
        failed = {e["id"]: e["message"] for e in body.get("errors", [])}
        return [
            PushOutcome(
                external_id=c.external_id, status=PushStatus.FAILED, reason=failed[c.external_id]
            )
            if c.external_id in failed
            else PushOutcome(external_id=c.external_id, status=PushStatus.OK)
            for c in changes
        ]


def _contact(row: dict[str, Any]) -> ContactRecord:
    return ContactRecord(
        external_id=str(row["id"]),
        email=row.get("email"),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        tags=tuple(row.get("tags", [])),
    )


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    register(Acme)
