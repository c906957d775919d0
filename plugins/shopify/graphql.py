"""A small GraphQL document parser: operations, fields, aliases, arguments and variables.

The simulator needs to read exactly the documents a Shopify client sends (one operation,
no fragments), and the tests use it to check the connector's documents against the schema.
It is not a general GraphQL implementation: fragments and subscriptions are refused with a
clear error instead of being half supported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "EnumValue",
    "Field",
    "GraphQLSyntaxError",
    "Operation",
    "Value",
    "Variable",
    "VariableDefinition",
    "parse",
    "resolve",
    "type_name",
    "variables_used",
]


@dataclass(frozen=True)
class Variable:
    """A ``$name`` reference inside an argument value."""

    name: str


@dataclass(frozen=True)
class EnumValue:
    """A bare enum literal such as ``UPDATED_AT``."""

    name: str


Value = None | bool | int | float | str | Variable | EnumValue | list["Value"] | dict[str, "Value"]
"""An argument value as written in the document."""

Resolved = None | bool | int | float | str | list["Resolved"] | dict[str, "Resolved"]


@dataclass(frozen=True)
class VariableDefinition:
    """``$name: Type = default`` from an operation's header; ``type`` is the source text."""

    name: str
    type: str
    default: Value = None

    @property
    def non_null(self) -> bool:
        return self.type.endswith("!")


@dataclass(frozen=True)
class Field:
    """One selected field, with its alias, arguments and sub-selections."""

    name: str
    alias: str | None = None
    arguments: Mapping[str, Value] = field(default_factory=dict)
    selections: tuple[Field, ...] = ()

    @property
    def key(self) -> str:
        """The key this field has in the response (its alias, else its name)."""
        return self.alias or self.name


@dataclass(frozen=True)
class Operation:
    """A parsed operation: ``query`` or ``mutation``, its variables and top-level fields."""

    kind: Literal["query", "mutation"]
    name: str | None
    variables: tuple[VariableDefinition, ...]
    selections: tuple[Field, ...]


class GraphQLSyntaxError(ValueError):
    """The document is not valid GraphQL (or uses a feature this parser refuses)."""

    def __init__(self, message: str, position: int, source: str) -> None:
        line = source.count("\n", 0, position) + 1
        column = position - (source.rfind("\n", 0, position) + 1) + 1
        super().__init__(f"{message} at [{line}, {column}]")
        self.line = line
        self.column = column


_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,\ufeff]+|\#[^\n]*)
    |(?P<block>\"\"\"(?:\\\"\"\"|[^"]|"(?!""))*\"\"\")
    |(?P<string>"(?:\\.|[^"\\\n])*")
    |(?P<spread>\.\.\.)
    |(?P<punct>[!$&():=@\[\]{|}])
    |(?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(source: str) -> Iterator[_Token]:
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise GraphQLSyntaxError(f"unexpected character {source[position]!r}", position, source)
        kind = match.lastgroup or ""
        if kind != "skip":
            yield _Token(kind, match.group(), position)
        position = match.end()
    yield _Token("eof", "", len(source))


def _block_string(raw: str) -> str:
    lines = raw[3:-3].replace('\\"""', '"""').splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    common = min(indents, default=0)
    body = [lines[0], *(line[common:] for line in lines[1:])] if lines else []
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return "\n".join(body)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = list(_tokens(source))
        self.index = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.index]

    def error(self, message: str) -> GraphQLSyntaxError:
        return GraphQLSyntaxError(message, self.peek.position, self.source)

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek.kind in ("punct", "spread") and self.peek.text == text:
            self.index += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            shown = self.peek.text or "end of document"
            raise self.error(f"expected {text!r}, found {shown!r}")

    def name(self) -> str:
        if self.peek.kind != "name":
            raise self.error(f"expected a name, found {self.peek.text or 'end of document'!r}")
        return self.take().text

    def document(self) -> Operation:
        if self.peek.kind == "punct" and self.peek.text == "{":
            operation = Operation("query", None, (), self.selection_set())
        else:
            keyword = self.name()
            if keyword == "fragment":
                raise self.error("fragments are not supported")
            if keyword not in ("query", "mutation"):
                raise self.error(f"unsupported operation type {keyword!r}")
            kind: Literal["query", "mutation"] = "query" if keyword == "query" else "mutation"
            name = self.name() if self.peek.kind == "name" else None
            variables = self.variable_definitions()
            self.directives()
            operation = Operation(kind, name, variables, self.selection_set())
        if self.peek.kind != "eof":
            raise self.error("a document may hold exactly one operation")
        return operation

    def variable_definitions(self) -> tuple[VariableDefinition, ...]:
        if not self.accept("("):
            return ()
        found: list[VariableDefinition] = []
        while not self.accept(")"):
            self.expect("$")
            name = self.name()
            self.expect(":")
            type_text = self.type_reference()
            default: Value = self.value(constant=True) if self.accept("=") else None
            found.append(VariableDefinition(name, type_text, default))
        return tuple(found)

    def type_reference(self) -> str:
        if self.accept("["):
            inner = self.type_reference()
            self.expect("]")
            text = f"[{inner}]"
        else:
            text = self.name()
        if self.accept("!"):
            text += "!"
        return text

    def directives(self) -> None:
        while self.accept("@"):
            self.name()
            self.arguments()

    def selection_set(self) -> tuple[Field, ...]:
        self.expect("{")
        fields: list[Field] = []
        while not self.accept("}"):
            if self.peek.kind == "spread":
                raise self.error("fragments are not supported")
            fields.append(self.field())
        if not fields:
            raise self.error("a selection set may not be empty")
        return tuple(fields)

    def field(self) -> Field:
        first = self.name()
        alias: str | None = None
        name = first
        if self.accept(":"):
            alias, name = first, self.name()
        arguments = self.arguments()
        self.directives()
        selections: tuple[Field, ...] = ()
        if self.peek.kind == "punct" and self.peek.text == "{":
            selections = self.selection_set()
        return Field(name=name, alias=alias, arguments=arguments, selections=selections)

    def arguments(self) -> dict[str, Value]:
        if not self.accept("("):
            return {}
        found: dict[str, Value] = {}
        while not self.accept(")"):
            name = self.name()
            if name in found:
                raise self.error(f"argument {name!r} is given twice")
            self.expect(":")
            found[name] = self.value(constant=False)
        return found

    def value(self, *, constant: bool) -> Value:
        token = self.peek
        if self.accept("$"):
            if constant:
                raise self.error("variables are not allowed here")
            return Variable(self.name())
        if self.accept("["):
            items: list[Value] = []
            while not self.accept("]"):
                items.append(self.value(constant=constant))
            return items
        if self.accept("{"):
            members: dict[str, Value] = {}
            while not self.accept("}"):
                key = self.name()
                self.expect(":")
                members[key] = self.value(constant=constant)
            return members
        self.take()
        if token.kind == "string":
            decoded: str = json.loads(token.text)
            return decoded
        if token.kind == "block":
            return _block_string(token.text)
        if token.kind == "number":
            is_float = any(c in token.text for c in ".eE")
            return float(token.text) if is_float else int(token.text)
        if token.kind == "name":
            if token.text in ("true", "false"):
                return token.text == "true"
            if token.text == "null":
                return None
            return EnumValue(token.text)
        self.index -= 1
        raise self.error(f"expected a value, found {token.text or 'end of document'!r}")


def parse(source: str) -> Operation:
    """Parse a document holding one operation; raise ``GraphQLSyntaxError`` otherwise."""
    return _Parser(source).document()


def _walk_values(value: Value) -> Iterator[Variable]:
    if isinstance(value, Variable):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk_values(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_values(item)


def _walk_fields(fields: tuple[Field, ...]) -> Iterator[Field]:
    for item in fields:
        yield item
        yield from _walk_fields(item.selections)


def variables_used(operation: Operation) -> set[str]:
    """Names of every variable referenced anywhere in the operation."""
    return {
        variable.name
        for item in _walk_fields(operation.selections)
        for argument in item.arguments.values()
        for variable in _walk_values(argument)
    }


def resolve(value: Value, variables: Mapping[str, Resolved]) -> Resolved:
    """An argument value with variables substituted and enums as their names."""
    if isinstance(value, Variable):
        return variables.get(value.name)
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, list):
        return [resolve(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, variables) for key, item in value.items()}
    return value


def type_name(type_text: str) -> str:
    """The named type inside a type reference: ``[String!]!`` -> ``String``."""
    return type_text.strip("[]!")
