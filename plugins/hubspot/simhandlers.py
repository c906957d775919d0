"""Request handlers of the HubSpot simulator: batches, properties, associations, OAuth.

Each handler takes the state (its lock held by the caller) and the request, and returns a
status and a JSON body, or raises ``HubSpotError`` with HubSpot's error body.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

from starlette.datastructures import QueryParams

from .simstate import (
    ASSOCIATION_TYPE_IDS,
    CREATED_PROPERTY,
    MODIFIED_PROPERTY,
    OBJECT_TYPES,
    HubSpotState,
    SimObject,
    SimOption,
    SimProperty,
    format_timestamp,
)

__all__ = [
    "Call",
    "Handler",
    "HubSpotError",
    "Json",
    "associations_batch_read",
    "bad",
    "batch_body",
    "batch_inputs",
    "batch_read",
    "batch_update",
    "create_group",
    "create_property",
    "gdpr_delete",
    "property_endpoint",
    "render",
    "requested",
    "token",
]

BATCH_LIMIT = 100
DEFAULT_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "contacts": ("firstname", "lastname", "email"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
    "orders": ("hs_order_name",),
}
Json = object
Handler = Callable[[HubSpotState, "Call"], tuple[int, Json]]


class HubSpotError(Exception):
    """An error answer: status and HubSpot's error body."""

    def __init__(self, status: int, message: str, category: str, **extra: Json) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Json] = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
            **extra,
        }


def bad(message: str, **extra: Json) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR", **extra)


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it."""

    path_params: Mapping[str, str]
    query: QueryParams
    body: bytes
    base_url: str

    def json(self) -> dict[str, Json]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            raise bad("Invalid input JSON: the body is not JSON") from None
        if not isinstance(value, dict):
            raise bad("Invalid input JSON: expected an object")
        return value

    def kind(self, key: str = "object_type") -> str:
        name = self.path_params[key]
        if name not in OBJECT_TYPES:
            raise HubSpotError(404, f"Unknown object type {name}", "OBJECT_NOT_FOUND")
        return OBJECT_TYPES[name]


# -- rendering --------------------------------------------------------------------------------


def render(kind: str, obj: SimObject, properties: Sequence[str]) -> dict[str, Json]:
    always = ("hs_object_id", CREATED_PROPERTY[kind], MODIFIED_PROPERTY[kind])
    names = dict.fromkeys([*properties, *always])
    return {
        "id": str(obj.id),
        "properties": {name: obj.properties.get(name) for name in names},
        "createdAt": format_timestamp(obj.created_at),
        "updatedAt": format_timestamp(obj.updated_at),
        "archived": obj.archived,
    }


def requested(values: Sequence[str], kind: str) -> list[str]:
    names = [n.strip() for value in values for n in value.split(",") if n.strip()]
    return names or list(DEFAULT_PROPERTIES[kind])


def batch_body(results: list[Json], errors: list[dict[str, Json]]) -> tuple[int, Json]:
    now = format_timestamp(datetime.now(UTC))
    body: dict[str, Json] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": now,
        "completedAt": now,
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return 207, body
    return 200, body


def _batch_error(category: str, message: str, ids: Sequence[str]) -> dict[str, Json]:
    return {"status": "error", "category": category, "message": message, "context": {"ids": ids}}


def batch_inputs(body: Mapping[str, Json]) -> list[Mapping[str, Json]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise bad("Invalid input JSON: inputs must be a list of objects")
    if len(inputs) > BATCH_LIMIT:
        raise bad(f"Batch input of {len(inputs)} exceeds the limit of {BATCH_LIMIT} inputs")
    return inputs


# -- objects ----------------------------------------------------------------------------------


def _lookup(
    state: HubSpotState, kind: str, ident: str, id_property: str | None
) -> SimObject | None:
    if id_property is None:
        try:
            return state.objects[kind].get(int(ident))
        except ValueError:
            return None
    if id_property == "email":
        return state.objects[kind].by_email(ident)
    for obj in state.objects[kind].values():
        if obj.properties.get(id_property, "").casefold() == ident.casefold():
            return obj
    return None


def batch_read(state: HubSpotState, call: Call) -> tuple[int, Json]:
    kind = call.kind()
    body = call.json()
    inputs = batch_inputs(body)
    raw_properties = body.get("properties") or []
    properties = requested(
        [str(p) for p in raw_properties] if isinstance(raw_properties, list) else [], kind
    )
    id_property = body.get("idProperty")
    results: list[Json] = []
    missing: list[str] = []
    for item in inputs:
        ident = str(item.get("id", ""))
        obj = _lookup(state, kind, ident, str(id_property) if id_property else None)
        if obj is None or obj.archived:
            missing.append(ident)
        else:
            results.append(render(kind, obj, properties))
    errors = []
    if missing:
        message = f"Could not get some {kind.upper()} objects, they may be deleted or not exist."
        errors.append(_batch_error("OBJECT_NOT_FOUND", message, missing))
    return batch_body(results, errors)


def _check_value(prop: SimProperty, value: str) -> str | None:
    """Why ``value`` is invalid for ``prop``, else ``None``."""
    if prop.type != "enumeration" or value == "":
        return None
    values = value.split(";") if prop.field_type == "checkbox" else [value]
    bad = [v for v in values if v not in prop.option_values]
    if bad:
        return f"{bad[0]} was not one of the allowed options: {prop.option_values}"
    return None


def batch_update(state: HubSpotState, call: Call) -> tuple[int, Json]:
    kind = call.kind()
    inputs = batch_inputs(call.json())
    ids = [str(item.get("id", "")) for item in inputs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise bad(f"Duplicate IDs found in batch input: {duplicates}")
    invalid: dict[str, str] = {}
    for ident, item in zip(ids, inputs, strict=True):
        props = item.get("properties")
        if not isinstance(props, dict):
            raise bad("Each input needs properties")
        if kind != "contacts":
            continue
        for name, value in props.items():
            prop = state.properties.get(name)
            if prop is None:
                raise bad(
                    f'Property values were not valid: [{{"isValid":false,"message":"Property '
                    f'\\"{name}\\" does not exist","error":"PROPERTY_DOESNT_EXIST",'
                    f'"name":"{name}"}}]',
                    errors=[
                        {
                            "message": f'Property "{name}" does not exist',
                            "code": "PROPERTY_DOESNT_EXIST",
                            "context": {"propertyName": [name]},
                        }
                    ],
                )
            if prop.read_only:
                raise bad(f"Property {name} is read-only", errors=[{"code": "READ_ONLY_VALUE"}])
            problem = _check_value(prop, str(value))
            if problem is not None:
                if state.invalid_option_rejects_batch:
                    raise bad(
                        f'Property values were not valid: [{{"isValid":false,"message":'
                        f'"{problem}","error":"INVALID_OPTION","name":"{name}"}}]',
                        errors=[
                            {
                                "message": problem,
                                "code": "INVALID_OPTION",
                                "context": {"propertyName": [name]},
                            }
                        ],
                    )
                invalid[ident] = problem
    results: list[Json] = []
    missing: list[str] = []
    errors: list[dict[str, Json]] = []
    for ident, item in zip(ids, inputs, strict=True):
        obj = _lookup(state, kind, ident, None)
        if obj is None or obj.archived:
            missing.append(ident)
            continue
        if ident in invalid:
            errors.append(_batch_error("VALIDATION_ERROR", invalid[ident], [ident]))
            continue
        props = item.get("properties")
        assert isinstance(props, dict)
        for name, value in props.items():
            _apply(state, obj, str(name), str(value))
        state.touch(kind, obj)
        results.append(render(kind, obj, list(props)))
    if missing:
        message = f"Could not get some {kind.upper()} objects, they may be deleted or not exist."
        errors.insert(0, _batch_error("OBJECT_NOT_FOUND", message, missing))
    return batch_body(results, errors)


def _apply(state: HubSpotState, obj: SimObject, name: str, value: str) -> None:
    if name == "lifecyclestage" and value:
        # Forward-only: an earlier stage is accepted and silently not applied.
        order = state.properties["lifecyclestage"].option_values
        current = obj.properties.get(name, "")
        if current in order and order.index(value) < order.index(current):
            return
    obj.properties[name] = value


def gdpr_delete(state: HubSpotState, call: Call) -> tuple[int, Json]:
    body = call.json()
    ident = str(body.get("objectId", ""))
    id_property = body.get("idProperty")
    obj = _lookup(state, "contacts", ident, str(id_property) if id_property else None)
    if obj is None:
        raise HubSpotError(404, f"Object {ident} not found", "OBJECT_NOT_FOUND")
    del state.objects["contacts"][obj.id]
    for links in state.associations.values():
        links.pop(obj.id, None)
        for targets in links.values():
            targets.discard(obj.id)
    return 204, None


# -- properties -------------------------------------------------------------------------------


def _contacts_only(call: Call) -> None:
    if call.kind() != "contacts":
        raise bad("The simulator keeps property definitions for contacts only")


def _render_property(prop: SimProperty) -> dict[str, Json]:
    return {
        "name": prop.name,
        "label": prop.label,
        "type": prop.type,
        "fieldType": prop.field_type,
        "groupName": prop.group_name,
        "description": prop.description,
        "options": [
            {
                "label": o.label,
                "value": o.value,
                "displayOrder": o.display_order,
                "hidden": o.hidden,
            }
            for o in prop.options
        ],
        "hubspotDefined": prop.group_name == "contactinformation",
        "modificationMetadata": {"readOnlyValue": prop.read_only},
    }


def _options(raw: Json) -> list[SimOption]:
    if not isinstance(raw, list):
        raise bad("options must be a list")
    options = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not {"label", "value", "hidden"} <= set(item):
            raise bad("Each option needs label, value and hidden")
        order = item.get("displayOrder", index)
        options.append(
            SimOption(
                str(item["label"]),
                str(item["value"]),
                order if isinstance(order, int) else index,
                bool(item["hidden"]),
            )
        )
    return options


def create_property(state: HubSpotState, call: Call) -> tuple[int, Json]:
    _contacts_only(call)
    body = call.json()
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        raise bad(f"Missing required fields: {missing}")
    name = str(body["name"])
    if name in state.properties:
        raise HubSpotError(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
    if str(body["groupName"]) not in state.groups:
        raise bad(f"Property group {body['groupName']} does not exist")
    if body["type"] == "enumeration" and "options" not in body:
        raise bad("Enumeration properties need options")
    prop = SimProperty(
        name,
        str(body["label"]),
        str(body["type"]),
        str(body["fieldType"]),
        str(body["groupName"]),
        str(body.get("description", "")),
        _options(body.get("options", [])),
    )
    state.properties[name] = prop
    return 201, _render_property(prop)


def property_endpoint(state: HubSpotState, call: Call, method: str) -> tuple[int, Json]:
    _contacts_only(call)
    name = call.path_params["name"]
    prop = state.properties.get(name)
    if prop is None:
        raise HubSpotError(404, f"Unable to find property {name}", "OBJECT_NOT_FOUND")
    if method == "PATCH":
        body = call.json()
        if "options" in body:
            prop.options = _options(body["options"])
        if "label" in body:
            prop.label = str(body["label"])
    return 200, _render_property(prop)


def create_group(state: HubSpotState, call: Call) -> tuple[int, Json]:
    _contacts_only(call)
    body = call.json()
    name, label = body.get("name"), body.get("label")
    if not name or not label:
        raise bad("A property group needs name and label")
    if str(name) in state.groups:
        raise HubSpotError(409, f"Property group {name} already exists.", "OBJECT_ALREADY_EXISTS")
    state.groups[str(name)] = str(label)
    return 201, {"name": name, "label": label, "displayOrder": body.get("displayOrder", -1)}


# -- associations and OAuth -------------------------------------------------------------------


def associations_batch_read(state: HubSpotState, call: Call) -> tuple[int, Json]:
    source, target = call.kind("from_type"), call.kind("to_type")
    inputs = batch_inputs(call.json())
    links = state.associations.get((source, target), {})
    type_id = ASSOCIATION_TYPE_IDS.get((source, target))
    results: list[Json] = []
    for item in inputs:
        ident = str(item.get("id", ""))
        targets = sorted(links.get(int(ident), set())) if ident.isdigit() else []
        if targets:
            results.append(
                {
                    "from": {"id": ident},
                    # HubSpot sends ids as numbers here, unlike everywhere else.
                    "to": [
                        {
                            "toObjectId": t,
                            "associationTypes": [
                                {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                            ],
                        }
                        for t in targets
                    ],
                }
            )
    return batch_body(results, [])


def token(state: HubSpotState, call: Call) -> tuple[int, Json]:
    form = {k: v[0] for k, v in parse_qs(call.body.decode()).items()}

    def refuse(status: str, message: str) -> tuple[int, Json]:
        return 400, {"status": status, "message": message, "correlationId": str(uuid.uuid4())}

    if form.get("grant_type") != "refresh_token":
        return refuse("UNSUPPORTED_GRANT_TYPE", "grant_type must be refresh_token here")
    client_id = form.get("client_id", "")
    if client_id not in state.oauth_apps:
        return refuse("BAD_CLIENT_ID", "missing or invalid client_id")
    if state.oauth_apps[client_id] != form.get("client_secret"):
        return refuse("BAD_CLIENT_SECRET", "missing or invalid client_secret")
    refresh = form.get("refresh_token", "")
    if state.refresh_tokens.get(refresh) != client_id:
        return refuse("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
    access, lifetime = state.issue_access_token()
    return 200, {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": lifetime,
        "token_type": "bearer",
        "hub_id": state.portal_id,
        "scopes": ["crm.objects.contacts.read", "crm.objects.contacts.write"],
        "token_use": "access_token",
    }
