"""Checks GraphQL documents against the Admin API schema subset shipped beside this file
(a copy of shared/specs/shopify-admin-subset.graphql; its header says where it came from).

graphql-core is not a dependency, so this reads the SDL (as graphql-core prints it: two
spaces per level, descriptions as block strings) with a line parser, and walks documents
parsed by the plugin's own parser: every field must exist on its type and not be
deprecated, arguments must exist with compatible variable types and valid enum literals,
required arguments must be given, objects need selections and scalars must not have any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from clm_hub_plugins.shopify.graphql import EnumValue, Field, Variable, parse, variables_used

SPEC_NAME = "shopify-admin-subset.graphql"
SPEC_PLACES = (Path(__file__).resolve().parent / SPEC_NAME,)


def spec_path() -> Path | None:
    """The schema subset shipped with the tests."""
    return next((p for p in SPEC_PLACES if p.is_file()), None)


_TYPE = re.compile(r"^(type|interface|input|enum)\s+(\w+)")
_SCALAR = re.compile(r"^scalar\s+(\w+)")
_FIELD = re.compile(r"^  (\w+)(\(|:\s*(\S+))")
_ARG = re.compile(r"^    (\w+):\s*([\w\[\]!]+)(\s*=)?")
_CLOSE = re.compile(r"^  \):\s*([\w\[\]!]+)")
_ENUM_VALUE = re.compile(r"^  ([A-Z][A-Z0-9_]*)\b")
_BUILTIN = {"Int", "Float", "String", "Boolean", "ID"}


@dataclass
class SdlField:
    type: str = ""
    args: dict[str, tuple[str, bool]] = field(default_factory=dict)
    deprecated: bool = False


@dataclass
class Schema:
    fields: dict[str, dict[str, SdlField]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    enums: dict[str, set[str]] = field(default_factory=dict)

    def is_object(self, name: str) -> bool:
        return self.kinds.get(name) in ("type", "interface")


def load(path: Path) -> Schema:
    schema = Schema()
    current: str | None = None
    pending: tuple[str, SdlField] | None = None
    in_block = False
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if in_block:
            in_block = '"""' not in text
            continue
        if text.startswith('"""'):
            in_block = not (len(text) >= 6 and text.endswith('"""'))
            continue
        if text.startswith('"'):
            continue
        if match := _TYPE.match(line):
            current = match.group(2)
            schema.kinds[current] = match.group(1)
            schema.fields.setdefault(current, {})
            if match.group(1) == "enum":
                schema.enums[current] = set()
            continue
        if match := _SCALAR.match(line):
            schema.kinds[match.group(1)] = "scalar"
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is None:
            continue
        if current in schema.enums:
            if match := _ENUM_VALUE.match(line):
                schema.enums[current].add(match.group(1))
            continue
        if pending is not None:
            if match := _ARG.match(line):
                pending[1].args[match.group(1)] = (match.group(2), bool(match.group(3)))
            elif match := _CLOSE.match(line):
                pending[1].type = match.group(1)
                pending[1].deprecated = "@deprecated" in line
                schema.fields[current][pending[0]] = pending[1]
                pending = None
            continue
        if match := _FIELD.match(line):
            sdl = SdlField(deprecated="@deprecated" in line)
            if match.group(2) == "(":
                pending = (match.group(1), sdl)
            else:
                sdl.type = match.group(3)
                schema.fields[current][match.group(1)] = sdl
    return schema


def _base(type_text: str) -> str:
    return type_text.strip("[]!")


def _compatible(variable: str, argument: str) -> bool:
    var_nn, arg_nn = variable.endswith("!"), argument.endswith("!")
    var_inner, arg_inner = variable.rstrip("!"), argument.rstrip("!")
    if arg_nn and not var_nn:
        return False
    if arg_inner.startswith("["):
        return var_inner.startswith("[") and _compatible(var_inner[1:-1], arg_inner[1:-1])
    return var_inner == arg_inner


def problems(schema: Schema, document: str, *, allow_deprecated: bool = False) -> list[str]:
    """Everything wrong with ``document`` against ``schema`` (empty when it validates)."""
    operation = parse(document)
    found: list[str] = []
    declared = {v.name: v.type for v in operation.variables}
    for name, type_text in declared.items():
        base = _base(type_text)
        if base not in _BUILTIN and schema.kinds.get(base) not in ("scalar", "enum", "input"):
            found.append(f"${name}: unknown input type {type_text}")
    used = variables_used(operation)
    found += [f"${name} is declared but not used" for name in sorted(declared.keys() - used)]
    found += [f"${name} is used but not declared" for name in sorted(used - declared.keys())]
    root = "Mutation" if operation.kind == "mutation" else "QueryRoot"

    def walk(fields: tuple[Field, ...], type_name: str) -> None:
        for item in fields:
            if item.name == "__typename":
                continue
            sdl = schema.fields.get(type_name, {}).get(item.name)
            where = f"{type_name}.{item.name}"
            if sdl is None:
                found.append(f"{where} does not exist")
                continue
            if sdl.deprecated and not allow_deprecated:
                found.append(f"{where} is deprecated")
            for arg, value in item.arguments.items():
                if arg not in sdl.args:
                    found.append(f"{where} has no argument {arg!r}")
                    continue
                arg_type, has_default = sdl.args[arg]
                wanted = arg_type.rstrip("!") if has_default else arg_type
                if isinstance(value, Variable):
                    given = declared.get(value.name)
                    if given is not None and not _compatible(given, wanted):
                        found.append(f"{where}({arg}:) takes {arg_type}, ${value.name} is {given}")
                elif isinstance(value, EnumValue) and value.name not in schema.enums.get(
                    _base(arg_type), set()
                ):
                    found.append(f"{where}({arg}:) has no value {value.name}")
            for arg, (arg_type, has_default) in sdl.args.items():
                if arg_type.endswith("!") and not has_default and arg not in item.arguments:
                    found.append(f"{where} needs argument {arg!r}")
            target = _base(sdl.type)
            if schema.is_object(target):
                if not item.selections:
                    found.append(f"{where} returns {target} and needs a selection")
                walk(item.selections, target)
            elif item.selections:
                found.append(f"{where} returns {target}, which has no fields to select")

    walk(operation.selections, root)
    return found
