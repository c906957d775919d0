"""The HubSpot CRM connector: contacts and deals/orders in, hub-owned properties out.

The work is split by concern: ``reading.py`` pulls pages with exact cursors, ``writing.py``
pushes property values and creates the properties, ``webhooks.py`` verifies deliveries,
``limits.py`` and ``auth.py`` configure the HTTP client the hub builds for this connector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import ClassVar

import httpx

from clm_hub import (
    Capability,
    Connector,
    ContactRecord,
    OrderRecord,
    Page,
    PushChange,
    PushOutcome,
    PushStatus,
    StreamCursor,
    WebhookEvent,
    WebhookRequest,
    parse_page,
)
from clm_hub.connectors import HttpClient, HttpOptions
from clm_hub.errors import (
    AuthError,
    ConfigError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    UpstreamError,
)

from .api import BATCH_LIMIT, Api, chunks, outcome, rejection_reason, short_reason
from .auth import TOKEN_PATH, HubSpotOAuth
from .limits import HubSpotLimiter, hubspot_retry_after
from .mapping import CONTACTS, DEALS, ORDERS, OrderRules, row_id, to_contact
from .reading import Reader
from .settings import DEFAULT_BASE_URL, HubSpotSettings, OrderSource
from .vendor import BatchResponse, ObjectPage
from .webhooks import SignatureProblem, delivery_id, parse_events, plan_delivery, verify_v3
from .writing import NPS_CLASSES, PropertySetup, PropertyWriter

__all__ = ["SCOPES", "HubSpot"]

SCOPES = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.orders.read",
    "crm.schemas.contacts.write",
)


class HubSpot(Connector[HubSpotSettings]):
    """HubSpot CRM (v3 objects, v4 associations): contacts and deals/orders in; the hub's
    stage, segments and NPS class out, as enumeration properties the hub owns."""

    name = "hubspot"
    version = "0.1.0"
    settings_model = HubSpotSettings
    default_base_url = DEFAULT_BASE_URL
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.CONTACTS,
            Capability.ORDERS,
            Capability.FIELD_PUSH,
            Capability.WEBHOOKS,
            Capability.ERASE,
        }
    )
    max_push_batch = BATCH_LIMIT
    cursor_version = 1

    def __init__(
        self, settings: HubSpotSettings, http: HttpClient, *, connector_id: str | None = None
    ) -> None:
        super().__init__(settings, http, connector_id=connector_id)
        auth = http.client.auth
        if isinstance(auth, HubSpotOAuth):
            auth.connector = self.connector_id
            auth.on_new_secrets(http.redactor.add)  # fresh tokens are masked in logs too
        self.api = Api(http, self.connector_id)
        self.reader = Reader(
            self.api,
            page_size=settings.page_size,
            search_page_size=settings.search_page_size,
            index_lag=timedelta(seconds=settings.index_lag_seconds),
            rules=OrderRules(
                paid_deal_stages=settings.paid_deal_stages,
                use_closed_won_flag=settings.use_closed_won_flag,
                paid_order_stages=settings.paid_order_stages,
                default_currency=settings.default_currency,
            ),
            log=self.log,
        )
        self.writer = PropertyWriter(self.api, settings, self.log)

    @classmethod
    def http_options(cls, settings: HubSpotSettings) -> HttpOptions:
        """Bearer token or OAuth, HubSpot's daily/burst/search pacing, its 429 reading."""
        base_url = (settings.base_url or cls.default_base_url).rstrip("/")
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if settings.uses_oauth:
            assert settings.client_id and settings.client_secret and settings.refresh_token
            auth = HubSpotOAuth(
                connector=cls.name,
                token_url=base_url + TOKEN_PATH,
                client_id=settings.client_id,
                client_secret=settings.client_secret.get_secret_value(),
                refresh_token=settings.refresh_token.get_secret_value(),
            )
        else:
            assert settings.access_token is not None
            headers["Authorization"] = f"Bearer {settings.access_token.get_secret_value()}"
        return HttpOptions(
            base_url=base_url,
            headers=headers,
            auth=auth,
            limiter=HubSpotLimiter.from_settings(cls.name, settings),
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds)
            ),
            retry_after=hubspot_retry_after,
        )

    async def check(self) -> None:
        """Read one contact; say which setting to fix when HubSpot refuses."""
        try:
            await self.api.call("GET", CONTACTS.path, ObjectPage, params={"limit": 1})
        except AuthError as exc:
            if exc.status_code not in (401, 403):
                raise  # a refused OAuth refresh explains itself
            if exc.status_code == 403:
                hint = f"the token lacks a scope; the connector needs {', '.join(SCOPES)}"
            elif self.settings.uses_oauth:
                hint = "check client_id, client_secret and refresh_token of the OAuth app"
            else:
                hint = (
                    "set access_token to the private app's token (HubSpot: Settings > "
                    "Integrations > Private apps > your app > Auth)"
                )
            raise AuthError(
                self.connector_id,
                f"HubSpot refused the credentials ({exc.status_code}): {hint}.",
                status_code=exc.status_code,
            ) from None

    # -- pulling --------------------------------------------------------------------------

    async def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        """Contacts changed since ``since``: a list scan when ``None``, else CRM search."""
        async for page in self.reader.pull((CONTACTS,), since, self.reader.contacts_page):
            yield page

    async def pull_orders(self, since: StreamCursor | None) -> AsyncIterator[Page[OrderRecord]]:
        """Deals and/or commerce orders changed since ``since``, linked to their contact."""
        kinds = [
            kind
            for kind, source in ((DEALS, OrderSource.DEALS), (ORDERS, OrderSource.ORDERS))
            if source in self.settings.order_sources
        ]
        async for page in self.reader.pull(kinds, since, self.reader.orders_page):
            yield page

    # -- pushing and setting up -----------------------------------------------------------

    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        """Write hub-owned properties (``set_fields``: property -> value, ``None`` clears)
        through ``batch/update``; one outcome per change.

        Values are checked against the properties' options first, so a value HubSpot would
        reject fails alone instead of failing its whole batch; a batch HubSpot still rejects
        as a whole (400) is split in halves and resent until the bad inputs stand alone.
        Multi-select values (segments) are ``;``-joined. Tags are refused: HubSpot contacts
        have none.
        """
        return await self.writer.push(changes)

    async def prepare_push(self, field_values: Mapping[str, Sequence[str]]) -> None:
        """Make the owned properties exist and accept ``field_values`` (property -> every
        value it will take), before a cycle's first push. Creates the property group and
        the enumeration properties (segments: multi-select checkbox; stage, NPS class:
        select), or adds the options they lack; idempotent, and existing options are never
        removed (contacts may still hold them). Raises ``RequestRejected`` naming what to
        create by hand when the token may not change properties, or when the hub writes a
        property this connector does not manage."""
        for result in await self.writer.ensure(field_values):
            if result.action != "unchanged":
                self.log.info(
                    "hubspot.property." + result.action,
                    property=result.name,
                    options=len(result.added_options),
                )

    async def ensure_properties(
        self,
        *,
        stages: Sequence[str],
        segments: Sequence[str],
        nps_classes: Sequence[str] = NPS_CLASSES,
    ) -> list[PropertySetup]:
        """``prepare_push`` by kind, saying what it did: for set-up commands and the demo.

        Raises ``ConfigError`` when a name is taken by a property of another type, or a
        ``lifecyclestage_map`` target is not an option of the portal."""
        s = self.settings
        return await self.writer.ensure(
            {s.stage_property: stages, s.segment_property: segments, s.nps_property: nps_classes}
        )

    # -- webhooks and erasure -------------------------------------------------------------

    async def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        """Verify a v3-signed delivery and fetch the contacts (and deals) it names."""
        secret = self.settings.client_secret
        if secret is None:
            raise ConfigError(
                f"{self.connector_id}: set client_secret (the HubSpot app's client secret) to "
                "verify webhook deliveries"
            )
        try:
            verify_v3(
                secret=secret.get_secret_value(),
                method=request.method,
                uri=self.settings.webhook_url or request.url,
                body=request.body,
                headers=request.headers,
                now=request.received_at,
            )
        except SignatureProblem as exc:
            raise AuthError(self.connector_id, f"webhook delivery rejected: {exc}") from None
        try:
            events = parse_events(request.body)
        except ValueError as exc:
            raise MalformedResponse(self.connector_id, str(exc)) from None
        plan = plan_delivery(
            events,
            owned=self.settings.owned_properties,
            deals=OrderSource.DEALS in self.settings.order_sources,
        )
        contacts, missing = await self._fetch_contacts(plan.fetch_contacts)
        deleted = sorted({*plan.deleted_contacts, *missing})
        orders = await self._fetch_deals(plan.fetch_deals)
        return WebhookEvent(
            event_id=delivery_id(events),
            contacts=[*contacts, *(ContactRecord(external_id=i, deleted=True) for i in deleted)],
            orders=orders,
            erase_external_ids=plan.erased_contacts,
        )

    async def _batch_read(
        self, path: str, ids: Sequence[str], properties: Sequence[str]
    ) -> list[BatchResponse]:
        bodies = []
        for chunk in chunks(list(ids)):
            body = {
                "properties": list(properties),
                "propertiesWithHistory": [],
                "inputs": [{"id": ident} for ident in chunk],
            }
            bodies.append(
                await self.api.call("POST", f"{path}/batch/read", BatchResponse, json=body)
            )
        return bodies

    async def _fetch_contacts(self, ids: Sequence[str]) -> tuple[list[ContactRecord], set[str]]:
        """Contacts by id, and the ids HubSpot no longer knows (deleted since the event)."""
        records: list[ContactRecord] = []
        missing: set[str] = set()
        for body in await self._batch_read(CONTACTS.path, ids, CONTACTS.properties):
            page = parse_page(body.results, to_contact, external_id=row_id)
            if page.rejected:
                self.log.warning("hubspot.webhook.rejected_rows", rows=len(page.rejected))
            records.extend(page.records)
            for error in body.errors:
                if error.category == "OBJECT_NOT_FOUND":
                    missing.update(error.context.get("ids", []))
        return records, missing

    async def _fetch_deals(self, ids: Sequence[str]) -> list[OrderRecord]:
        records: list[OrderRecord] = []
        for body in await self._batch_read(DEALS.path, ids, DEALS.properties):
            page = await self.reader.orders_page(DEALS, body.results, StreamCursor())
            if page.rejected:
                self.log.warning("hubspot.webhook.rejected_rows", rows=len(page.rejected))
            records.extend(page.records)
        return records

    async def erase(self, external_ids: Sequence[str]) -> Sequence[PushOutcome]:
        """Permanently delete contacts through HubSpot's GDPR delete endpoint, one call
        each (there is no batch form); an unknown contact counts as erased."""
        outcomes: list[PushOutcome] = []
        for external_id in external_ids:
            try:
                await self.api.send(
                    "POST", f"{CONTACTS.path}/gdpr-delete", json={"objectId": external_id}
                )
            except RequestRejected as exc:
                if exc.status_code == 404:
                    outcomes.append(outcome(external_id, PushStatus.OK, "already gone"))
                else:
                    reason = rejection_reason(exc)
                    outcomes.append(outcome(external_id, PushStatus.FAILED, reason))
                continue
            except (RateLimited, UpstreamError, MalformedResponse) as exc:
                outcomes.append(outcome(external_id, PushStatus.RETRY, short_reason(exc)))
                continue
            outcomes.append(outcome(external_id, PushStatus.OK))
        return outcomes
