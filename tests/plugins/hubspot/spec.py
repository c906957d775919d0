"""Checks request bodies against the HubSpot OpenAPI subset in hubspot_spec_subset.json.

A small validator for the parts of JSON Schema those entries use (``$ref``, types,
``required``, ``enum``, ``items``, ``additionalProperties``). Unlike OpenAPI's default, keys
an object schema does not declare are reported, so a misspelled field fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

SPEC = json.loads((Path(__file__).parent / "hubspot_spec_subset.json").read_text("utf-8"))
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
}


def problems(name: str, value: object) -> list[str]:
    """Everything about ``value`` that does not fit schema ``name``."""
    found: list[str] = []
    _check({"$ref": f"#/components/schemas/{name}"}, value, name, found)
    return found


def assert_valid(name: str, value: object) -> None:
    found = problems(name, value)
    assert not found, "\n".join(found)


def _check(schema: dict[str, object], value: object, where: str, found: list[str]) -> None:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = SPEC["schemas"][ref.rsplit("/", 1)[1]]
    kind = schema.get("type")
    if isinstance(kind, str):
        ok = isinstance(value, _TYPES[kind]) and not (kind == "integer" and isinstance(value, bool))
        if not ok:
            found.append(f"{where}: expected {kind}, got {type(value).__name__}")
            return
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        found.append(f"{where}: {value!r} is not one of {enum}")
    if isinstance(value, dict):
        declared = schema.get("properties", {})
        assert isinstance(declared, dict)
        for key in schema.get("required", []):  # type: ignore[attr-defined]
            if key not in value:
                found.append(f"{where}: missing required {key!r}")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in declared:
                _check(declared[key], item, f"{where}.{key}", found)
            elif isinstance(extra, dict):
                _check(extra, item, f"{where}.{key}", found)
            elif declared:
                found.append(f"{where}: {key!r} is not in the spec")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{where}[{index}]", found)  # type: ignore[arg-type]
