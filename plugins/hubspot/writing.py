"""Writing the hub's stage, segments and NPS class into HubSpot contact properties.

HubSpot contacts have no tags, so the hub owns three enumeration properties (stage, segments
as a multi-select, NPS class) in its own property group, and optionally maps its stage onto
the built-in ``lifecyclestage``, which HubSpot only moves forward (hubspot.md section 4.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog
from pydantic import ValidationError

from clm_hub import PushChange, PushOutcome, PushStatus
from clm_hub.errors import (
    AuthError,
    ConfigError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    UpstreamError,
)

from .api import Api, chunks, outcome, rejection_reason, short_reason
from .mapping import CONTACTS
from .settings import HubSpotSettings, LifecycleSync
from .vendor import BatchResponse, CrmObject, JsonObject, PropertyDefinition

__all__ = [
    "LIFECYCLESTAGE",
    "NPS_CLASSES",
    "PERMANENT_CATEGORIES",
    "PropertySetup",
    "PropertyWriter",
    "batch_outcomes",
]

LIFECYCLESTAGE = "lifecyclestage"
NPS_CLASSES = ("promoter", "passive", "detractor")
PROPERTIES_PATH = "/crm/v3/properties/contacts"
PERMANENT_CATEGORIES = frozenset(
    {
        "OBJECT_NOT_FOUND",
        "VALIDATION_ERROR",
        "INVALID_OPTION",
        "PROPERTY_DOESNT_EXIST",
        "READ_ONLY_VALUE",
        "MISSING_SCOPES",
    }
)
"""Batch error categories that will not heal by themselves; others are retried later."""


@dataclass(frozen=True)
class PropertySetup:
    """What ``prepare_push``/``ensure_properties`` did to one hub-owned property."""

    name: str
    action: Literal["created", "updated", "unchanged"]
    added_options: tuple[str, ...] = ()


class PropertyWriter:
    """Creates the hub's contact properties and writes their values in batches."""

    def __init__(
        self, api: Api, settings: HubSpotSettings, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        self.api = api
        self.settings = settings
        self.log = log
        self._definitions: dict[str, PropertyDefinition | None] = {}
        self._definitions_lock = asyncio.Lock()  # the hub pushes several batches at once

    @property
    def writable(self) -> frozenset[str]:
        """Properties ``push`` accepts in ``set_fields``."""
        owned = set(self.settings.owned_properties)
        if self.settings.lifecyclestage_sync is not LifecycleSync.OFF:
            owned.add(LIFECYCLESTAGE)
        return frozenset(owned)

    # -- pushing --------------------------------------------------------------------------

    async def push(self, changes: Sequence[PushChange]) -> list[PushOutcome]:
        """One outcome per change, in order; changes to one contact are merged."""
        outcomes: list[PushOutcome | None] = [None] * len(changes)
        wanted: dict[str, dict[str, str]] = {}
        members: dict[str, list[int]] = {}
        for index, change in enumerate(changes):
            problem = self._change_problem(change)
            if problem is not None:
                outcomes[index] = outcome(change.external_id, PushStatus.FAILED, problem)
                continue
            if not change.set_fields:
                outcomes[index] = outcome(change.external_id, PushStatus.OK)
                continue
            props = wanted.setdefault(change.external_id, {})
            props.update({k: "" if v is None else v for k, v in change.set_fields.items()})
            members.setdefault(change.external_id, []).append(index)

        verdicts: dict[str, PushOutcome] = {}
        for external_id, props in list(wanted.items()):
            problem = await self._value_problem(props)
            if problem is not None:
                verdicts[external_id] = outcome(external_id, PushStatus.FAILED, problem)
                del wanted[external_id]

        backward = await self._plan_lifecyclestage(wanted)
        for external_id in [i for i, props in wanted.items() if not props]:
            verdicts[external_id] = outcome(external_id, PushStatus.OK)  # lifecycle only
            del wanted[external_id]
        for chunk in chunks(list(wanted.items())):
            verdicts.update(await self.update_batch(chunk))
        if backward:
            await self._move_lifecyclestage_back(backward, verdicts)

        for external_id, indexes in members.items():
            for index in indexes:
                outcomes[index] = verdicts[external_id]
        return [item for item in outcomes if item is not None]

    def _change_problem(self, change: PushChange) -> str | None:
        if change.add_tags or change.remove_tags:
            return (
                "HubSpot contacts have no tags; the hub writes stage and segments into the "
                f"properties {', '.join(self.settings.owned_properties)}"
            )
        foreign = sorted(set(change.set_fields) - self.writable)
        if foreign:
            return (
                f"property {', '.join(foreign)} is not owned by the hub; writable: "
                f"{', '.join(sorted(self.writable))}"
            )
        return None

    async def _value_problem(self, props: dict[str, str]) -> str | None:
        """Why HubSpot would reject these values (and with them the whole batch). Clearing
        a property that does not exist is dropped: there is nothing to clear."""
        for name, value in list(props.items()):
            if name == LIFECYCLESTAGE:
                continue
            definition = await self.definition(name)
            if definition is None:
                if value == "":
                    del props[name]
                    continue
                return f"property {name} does not exist in HubSpot; prepare_push creates it"
            if value == "":
                continue
            allowed = {option.value for option in definition.options}
            values = value.split(";") if definition.fieldType == "checkbox" else [value]
            unknown = [v for v in values if v not in allowed]
            if unknown:
                return f"{', '.join(unknown)} is not an option of {name}; prepare_push adds it"
        return None

    async def definition(self, name: str, *, refresh: bool = False) -> PropertyDefinition | None:
        """A contact property's definition (cached per connector), ``None`` if absent."""
        async with self._definitions_lock:
            if refresh or name not in self._definitions:
                try:
                    self._definitions[name] = await self.api.call(
                        "GET", f"{PROPERTIES_PATH}/{name}", PropertyDefinition
                    )
                except RequestRejected as exc:
                    if exc.status_code != 404:
                        raise
                    self._definitions[name] = None
            return self._definitions[name]

    async def update_batch(
        self, items: Sequence[tuple[str, Mapping[str, str]]]
    ) -> dict[str, PushOutcome]:
        """``POST batch/update`` for up to 100 contacts; a whole-batch 400 is halved and
        resent until the bad inputs stand alone, so the good ones land."""
        ids = [external_id for external_id, _ in items]
        try:
            body = await self.api.call(
                "POST",
                f"{CONTACTS.path}/batch/update",
                BatchResponse,
                json={"inputs": [{"id": i, "properties": dict(p)} for i, p in items]},
            )
        except RequestRejected as exc:
            if exc.status_code == 400 and len(items) > 1:
                self.log.info("hubspot.push.split", inputs=len(items))
                middle = len(items) // 2
                left = await self.update_batch(items[:middle])
                return left | await self.update_batch(items[middle:])
            reason = rejection_reason(exc)
            return {i: outcome(i, PushStatus.FAILED, reason) for i in ids}
        except (RateLimited, UpstreamError, MalformedResponse) as exc:
            return {i: outcome(i, PushStatus.RETRY, short_reason(exc)) for i in ids}
        return batch_outcomes(ids, body)

    async def _plan_lifecyclestage(self, wanted: dict[str, dict[str, str]]) -> dict[str, str]:
        """Add forward ``lifecyclestage`` moves to ``wanted``; return the backward ones
        (id -> target) when allowed, else leave them out (HubSpot would ignore them)."""
        mode = self.settings.lifecyclestage_sync
        if mode is LifecycleSync.OFF:
            return {}
        mapping = self.settings.lifecyclestage_map
        targets = {
            external_id: props.pop(LIFECYCLESTAGE, "")
            or mapping.get(props.get(self.settings.stage_property, ""), "")
            for external_id, props in wanted.items()
        }
        targets = {k: v for k, v in targets.items() if v}
        if not targets:
            return {}
        rank = option_rank(await self.definition(LIFECYCLESTAGE))
        unknown = sorted({t for t in targets.values() if t not in rank})
        if unknown:
            self.log.warning("hubspot.lifecyclestage.unknown_option", options=unknown)
        current = await self.read_values(list(targets), (LIFECYCLESTAGE,))
        backward: dict[str, str] = {}
        skipped = 0
        for external_id, target in targets.items():
            if target not in rank:
                continue
            now = current.get(external_id, {}).get(LIFECYCLESTAGE) or ""
            if not now or rank[target] > rank.get(now, -1):
                wanted[external_id][LIFECYCLESTAGE] = target
            elif target == now:
                continue
            elif mode is LifecycleSync.ALLOW_BACKWARD:
                backward[external_id] = target
            else:
                skipped += 1
        if skipped:
            self.log.info("hubspot.lifecyclestage.not_moved_back", contacts=skipped)
        return backward

    async def _move_lifecyclestage_back(
        self, backward: Mapping[str, str], verdicts: dict[str, PushOutcome]
    ) -> None:
        """Clear, then set in a separate request (HubSpot does not order a batch)."""
        ok = PushStatus.OK
        ready = [i for i in backward if i not in verdicts or verdicts[i].status is ok]
        for step in ("clear", "set"):
            items = [(i, {LIFECYCLESTAGE: "" if step == "clear" else backward[i]}) for i in ready]
            results: dict[str, PushOutcome] = {}
            for chunk in chunks(items):
                results.update(await self.update_batch(chunk))
            for external_id, result in results.items():
                if result.status is not ok:
                    reason = f"lifecyclestage {step}: {result.reason}"
                    verdicts[external_id] = outcome(external_id, result.status, reason)
            ready = [i for i in ready if results[i].status is ok]

    async def read_values(
        self, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        """Current values of ``properties`` for contacts ``ids`` (unknown ids left out)."""
        values: dict[str, dict[str, str | None]] = {}
        for chunk in chunks(list(dict.fromkeys(ids))):
            body = await self.api.call(
                "POST",
                f"{CONTACTS.path}/batch/read",
                BatchResponse,
                json={
                    "properties": list(properties),
                    "propertiesWithHistory": [],
                    "inputs": [{"id": ident} for ident in chunk],
                },
            )
            for row in body.results:
                try:
                    obj = CrmObject.model_validate(row)
                except ValidationError:
                    continue
                values[obj.id] = dict(obj.properties)
        return values

    # -- setting up -----------------------------------------------------------------------

    def kinds(self) -> dict[str, tuple[str, str]]:
        """Owned property -> (label, HubSpot field type); segments are multi-select."""
        s = self.settings
        return {
            s.stage_property: ("Lifecycle stage (hub)", "select"),
            s.segment_property: ("Segments (hub)", "checkbox"),
            s.nps_property: ("NPS class (hub)", "select"),
        }

    async def ensure(self, field_values: Mapping[str, Sequence[str]]) -> list[PropertySetup]:
        """Create the property group and the named owned properties, or add the options
        they lack; see ``HubSpot.prepare_push``."""
        kinds = self.kinds()
        unknown = sorted(set(field_values) - set(kinds))
        if unknown:
            raise RequestRejected(
                self.api.connector_id,
                f"the hub writes {', '.join(unknown)}, which this connector does not manage "
                f"(it manages {', '.join(kinds)}); make stage_property, segment_property and "
                "nps_property in its settings match the hub's push field names",
            )
        s = self.settings
        group = {"name": s.property_group, "label": s.property_group_label, "displayOrder": -1}
        results: list[PropertySetup] = []
        try:
            await self.api.create(f"{PROPERTIES_PATH}/groups", group)
            for name, values in field_values.items():
                label, field_type = kinds[name]
                results.append(await self._ensure(name, label, field_type, values))
        except AuthError as exc:
            if exc.status_code != 403:
                raise
            wanted = "; ".join(f"{n}: {', '.join(v)}" for n, v in field_values.items())
            raise RequestRejected(
                self.api.connector_id,
                "HubSpot refused to create or change contact properties (403): grant the "
                "crm.schemas.contacts.write scope, or create these enumeration properties by "
                f"hand in the group {s.property_group} with these options: {wanted}",
                status_code=403,
            ) from None
        if s.lifecyclestage_sync is not LifecycleSync.OFF:
            rank = option_rank(await self.definition(LIFECYCLESTAGE, refresh=True))
            missing = sorted(set(s.lifecyclestage_map.values()) - set(rank))
            if missing:
                raise ConfigError(
                    f"{self.api.connector_id}: lifecyclestage_map targets {', '.join(missing)} "
                    f"are not lifecyclestage options of this portal ({', '.join(rank) or 'none'})"
                )
        return results

    async def _ensure(
        self, name: str, label: str, field_type: str, values: Sequence[str]
    ) -> PropertySetup:
        values = option_values(name, values)
        definition: JsonObject = {
            "name": name,
            "label": label,
            "type": "enumeration",
            "fieldType": field_type,
            "groupName": self.settings.property_group,
            "description": "Computed by clm-hub; changes made here are overwritten.",
            "formField": False,
            "options": [option(value, order) for order, value in enumerate(values, 1)],
        }
        if await self.api.create(PROPERTIES_PATH, definition):
            self._definitions.pop(name, None)
            return PropertySetup(name, "created", tuple(values))
        existing = await self.definition(name, refresh=True)
        if existing is None or existing.type != "enumeration":
            raise ConfigError(
                f"{self.api.connector_id}: a contact property named {name} exists but is not "
                f"an enumeration ({existing.type if existing else 'unreadable'}); choose "
                "another name in the connector's settings"
            )
        known = {item.value for item in existing.options}
        missing = [value for value in values if value not in known]
        if not missing:
            return PropertySetup(name, "unchanged")
        options: list[JsonObject] = [
            {
                "label": item.label,
                "value": item.value,
                "displayOrder": item.displayOrder if item.displayOrder is not None else order,
                "hidden": item.hidden,
            }
            for order, item in enumerate(existing.options, 1)
        ]
        start = len(options) + 1
        options += [option(value, order) for order, value in enumerate(missing, start)]
        # PATCH replaces the whole options list, so it carries the existing ones too.
        await self.api.send("PATCH", f"{PROPERTIES_PATH}/{name}", json={"options": options})
        self._definitions.pop(name, None)
        return PropertySetup(name, "updated", tuple(missing))


def batch_outcomes(ids: Sequence[str], body: BatchResponse) -> dict[str, PushOutcome]:
    """Per-record outcomes of a 200/207 batch response.

    Records listed in ``results`` landed; ``errors[].context.ids`` name the failed ones with
    HubSpot's category and message. Records named nowhere are retried later, with the
    message of any error that names no ids.
    """
    landed = {str(row.get("id")) for row in body.results}
    outcomes: dict[str, PushOutcome] = {}
    unattributed: list[str] = []
    unattributed_status = PushStatus.RETRY
    for error in body.errors:
        permanent = error.category in PERMANENT_CATEGORIES
        status = PushStatus.FAILED if permanent else PushStatus.RETRY
        reason = f"{error.category}: {error.message}".strip()
        named = error.context.get("ids", [])
        for ident in named:
            outcomes[ident] = outcome(ident, status, reason)
        if not named:
            unattributed.append(reason)
            if permanent:
                unattributed_status = PushStatus.FAILED
    for ident in ids:
        if ident in outcomes:
            continue
        if ident in landed:
            outcomes[ident] = outcome(ident, PushStatus.OK)
        else:
            reason = "; ".join(unattributed) or "HubSpot did not confirm this update"
            outcomes[ident] = outcome(ident, unattributed_status, reason)
    return {ident: outcomes[ident] for ident in ids}


def option_values(name: str, values: Sequence[str]) -> list[str]:
    """Distinct option values in order; ``;`` separates multi-select values, so not in one."""
    unique = list(dict.fromkeys(v.strip() for v in values))
    bad = [v for v in unique if not v or ";" in v]
    if bad:
        raise ValueError(f"{name}: option values must be non-empty and contain no ';': {bad}")
    return unique


def option(value: str, order: int) -> JsonObject:
    """An option with a readable label: ``at_risk`` -> ``At risk``."""
    label = value.replace("_", " ").replace("-", " ").strip().capitalize()
    return {"label": label, "value": value, "displayOrder": order, "hidden": False}


def option_rank(definition: PropertyDefinition | None) -> dict[str, int]:
    """Option value -> position (``displayOrder``), the funnel order of ``lifecyclestage``."""
    if definition is None:
        return {}
    return {
        item.value: item.displayOrder if item.displayOrder is not None else index
        for index, item in enumerate(definition.options)
    }
