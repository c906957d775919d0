"""What the simulated Admin API accepts and what it costs.

The schema subset the simulator serves (types, fields, root fields and their arguments),
validation with graphql-ruby's messages and codes (unknown fields and arguments, missing
required arguments, declared/used/typed variables, enum literals, selections on objects
only), and Shopify's calculated query cost: a connection costs 2 + ``first`` x its node,
other objects 1, a mutation 10.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .graphql import EnumValue, Field, Operation, Resolved, Value, Variable, resolve, variables_used

__all__ = [
    "CONNECTIONS",
    "ENUMS",
    "MUTATION_COST",
    "MUTATION_ROOTS",
    "QUERY_ROOTS",
    "SCHEMA",
    "GqlError",
    "arguments",
    "requested_cost",
    "validate",
]

MUTATION_COST = 10


class GqlError(Exception):
    """One entry for the response's ``errors``."""

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        path: Sequence[str | int] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.path = list(path) if path else None
        self.extra = dict(extra or {})

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"message": self.message}
        if self.path:
            out["path"] = self.path
        extensions: dict[str, object] = {**self.extra}
        if self.code:
            extensions["code"] = self.code
        if extensions:
            out["extensions"] = extensions
        return out


# -- the schema subset -----------------------------------------------------------------

_S = None  # a scalar or enum field

SCHEMA: dict[str, dict[str, str | None]] = {
    "Customer": {
        "id": _S,
        "legacyResourceId": _S,
        "firstName": _S,
        "lastName": _S,
        "displayName": _S,
        "createdAt": _S,
        "updatedAt": _S,
        "tags": _S,
        "state": _S,
        "note": _S,
        "verifiedEmail": _S,
        "numberOfOrders": _S,
        "email": _S,
        "phone": _S,
        "amountSpent": "MoneyV2",
        "lastOrder": "Order",
        "defaultEmailAddress": "CustomerEmailAddress",
        "defaultPhoneNumber": "CustomerPhoneNumber",
    },
    "CustomerEmailAddress": {
        "emailAddress": _S,
        "marketingState": _S,
        "marketingOptInLevel": _S,
        "marketingUpdatedAt": _S,
    },
    "CustomerPhoneNumber": {"phoneNumber": _S, "marketingState": _S, "marketingOptInLevel": _S},
    "Order": {
        "id": _S,
        "legacyResourceId": _S,
        "name": _S,
        "createdAt": _S,
        "processedAt": _S,
        "updatedAt": _S,
        "cancelledAt": _S,
        "cancelReason": _S,
        "closedAt": _S,
        "test": _S,
        "email": _S,
        "tags": _S,
        "currencyCode": _S,
        "presentmentCurrencyCode": _S,
        "displayFinancialStatus": _S,
        "displayFulfillmentStatus": _S,
        "customer": "Customer",
        "totalPriceSet": "MoneyBag",
        "currentTotalPriceSet": "MoneyBag",
        "totalRefundedSet": "MoneyBag",
    },
    "MoneyBag": {"shopMoney": "MoneyV2", "presentmentMoney": "MoneyV2"},
    "MoneyV2": {"amount": _S, "currencyCode": _S},
    "PageInfo": {"hasNextPage": _S, "hasPreviousPage": _S, "startCursor": _S, "endCursor": _S},
    "CustomerConnection": {"pageInfo": "PageInfo", "nodes": "Customer", "edges": "CustomerEdge"},
    "CustomerEdge": {"cursor": _S, "node": "Customer"},
    "OrderConnection": {"pageInfo": "PageInfo", "nodes": "Order", "edges": "OrderEdge"},
    "OrderEdge": {"cursor": _S, "node": "Order"},
    "Count": {"count": _S, "precision": _S},
    "Shop": {"id": _S, "name": _S, "myshopifyDomain": _S, "currencyCode": _S},
    "BulkOperation": {
        "id": _S,
        "status": _S,
        "errorCode": _S,
        "createdAt": _S,
        "completedAt": _S,
        "objectCount": _S,
        "rootObjectCount": _S,
        "fileSize": _S,
        "url": _S,
        "partialDataUrl": _S,
        "query": _S,
        "type": _S,
    },
    "BulkOperationRunQueryPayload": {
        "bulkOperation": "BulkOperation",
        "userErrors": "BulkOperationUserError",
    },
    "BulkOperationUserError": {"field": _S, "message": _S, "code": _S},
    "BulkOperationCancelPayload": {"bulkOperation": "BulkOperation", "userErrors": "UserError"},
    "UserError": {"field": _S, "message": _S},
    "TagsAddPayload": {"node": "Node", "userErrors": "UserError"},
    "TagsRemovePayload": {"node": "Node", "userErrors": "UserError"},
    "Node": {"id": _S},
    "CustomerRequestDataErasurePayload": {
        "customerId": _S,
        "userErrors": "CustomerRequestDataErasureUserError",
    },
    "CustomerRequestDataErasureUserError": {"field": _S, "message": _S, "code": _S},
}

ENUMS: dict[str, frozenset[str]] = {
    "CustomerSortKeys": frozenset(
        {"CREATED_AT", "ID", "LOCATION", "NAME", "RELEVANCE", "UPDATED_AT"}
    ),
    "OrderSortKeys": frozenset(
        {
            "CREATED_AT",
            "CURRENT_TOTAL_PRICE",
            "CUSTOMER_NAME",
            "DESTINATION",
            "FINANCIAL_STATUS",
            "FULFILLMENT_STATUS",
            "ID",
            "ORDER_NUMBER",
            "PO_NUMBER",
            "PROCESSED_AT",
            "RELEVANCE",
            "TOTAL_ITEMS_QUANTITY",
            "TOTAL_PRICE",
            "UPDATED_AT",
        }
    ),
    "BulkOperationType": frozenset({"QUERY", "MUTATION"}),
}


@dataclass(frozen=True)
class _Root:
    returns: str
    arguments: Mapping[str, tuple[str, bool]]
    """name -> (type, has a default)"""
    non_null: bool = False


_PAGE_ARGS: dict[str, tuple[str, bool]] = {
    "first": ("Int", False),
    "after": ("String", False),
    "last": ("Int", False),
    "before": ("String", False),
    "reverse": ("Boolean", True),
    "query": ("String", False),
}

QUERY_ROOTS: dict[str, _Root] = {
    "customers": _Root(
        "CustomerConnection", {**_PAGE_ARGS, "sortKey": ("CustomerSortKeys", True)}, True
    ),
    "orders": _Root(
        "OrderConnection",
        {**_PAGE_ARGS, "sortKey": ("OrderSortKeys", True), "savedSearchId": ("ID", False)},
        True,
    ),
    "customersCount": _Root("Count", {"query": ("String", False), "limit": ("Int", True)}),
    "ordersCount": _Root(
        "Count",
        {"query": ("String", False), "savedSearchId": ("ID", False), "limit": ("Int", True)},
    ),
    "customer": _Root("Customer", {"id": ("ID!", False)}),
    "order": _Root("Order", {"id": ("ID!", False)}),
    "shop": _Root("Shop", {}, True),
    "bulkOperation": _Root("BulkOperation", {"id": ("ID!", False)}),
    "currentBulkOperation": _Root("BulkOperation", {"type": ("BulkOperationType", True)}),
}

_TAG_ARGS: dict[str, tuple[str, bool]] = {"id": ("ID!", False), "tags": ("[String!]!", False)}

MUTATION_ROOTS: dict[str, _Root] = {
    "tagsAdd": _Root("TagsAddPayload", _TAG_ARGS),
    "tagsRemove": _Root("TagsRemovePayload", _TAG_ARGS),
    "bulkOperationRunQuery": _Root(
        "BulkOperationRunQueryPayload",
        {"query": ("String!", False), "groupObjects": ("Boolean!", True)},
    ),
    "bulkOperationCancel": _Root("BulkOperationCancelPayload", {"id": ("ID!", False)}),
    "customerRequestDataErasure": _Root(
        "CustomerRequestDataErasurePayload", {"customerId": ("ID!", False)}
    ),
}

CONNECTIONS = {"customers", "orders"}


# -- validation --------------------------------------------------------------------------


def _split(type_text: str) -> tuple[bool, str]:
    return (True, type_text[:-1]) if type_text.endswith("!") else (False, type_text)


def _compatible(variable_type: str, argument_type: str) -> bool:
    var_nn, var_inner = _split(variable_type)
    arg_nn, arg_inner = _split(argument_type)
    if arg_nn and not var_nn:
        return False
    if arg_inner.startswith("["):
        return var_inner.startswith("[") and _compatible(var_inner[1:-1], arg_inner[1:-1])
    return not var_inner.startswith("[") and var_inner == arg_inner


def _valid(value: object, type_text: str, *, literal: bool) -> bool:
    non_null, inner = _split(type_text)
    if isinstance(value, Variable):
        return True
    if value is None:
        return not non_null
    if inner.startswith("["):
        items = value if isinstance(value, list) else [value]
        return all(_valid(item, inner[1:-1], literal=literal) for item in items)
    if inner == "Int":
        return isinstance(value, int) and not isinstance(value, bool)
    if inner == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if inner in ("String", "ID"):
        return isinstance(value, str)
    if inner == "Boolean":
        return isinstance(value, bool)
    if inner in ENUMS:
        name = value.name if isinstance(value, EnumValue) else value if not literal else None
        return isinstance(name, str) and name in ENUMS[inner]
    return True


def _validate_selections(
    fields: Sequence[Field], type_name: str, path: list[str], errors: list[GqlError]
) -> None:
    known = SCHEMA.get(type_name, {})
    for item in fields:
        where = [*path, item.key]
        if item.name == "__typename":
            continue
        if item.name not in known:
            errors.append(
                GqlError(
                    f"Field '{item.name}' doesn't exist on type '{type_name}'",
                    "undefinedField",
                    path=where,
                    extra={"typeName": type_name, "fieldName": item.name},
                )
            )
            continue
        for argument in item.arguments:
            errors.append(
                GqlError(
                    f"Field '{item.name}' doesn't accept argument '{argument}'",
                    "argumentNotAccepted",
                    path=where,
                )
            )
        target = known[item.name]
        if target is None and item.selections:
            errors.append(
                GqlError(
                    f"Selections can't be made on scalars (field '{item.name}' returns a "
                    "scalar but has selections)",
                    "selectionMismatch",
                    path=where,
                )
            )
        elif target is not None and not item.selections:
            errors.append(
                GqlError(
                    f"Field must have selections (field '{item.name}' returns {target} but "
                    f"has no selections. Did you mean '{item.name} {{ ... }}'?)",
                    "selectionMismatch",
                    path=where,
                )
            )
        elif target is not None:
            _validate_selections(item.selections, target, where, errors)


def _validate_roots(
    operation: Operation,
    roots: Mapping[str, _Root],
    declared: Mapping[str, str],
    errors: list[GqlError],
) -> None:
    root_type = "Mutation" if operation.kind == "mutation" else "QueryRoot"
    for item in operation.selections:
        if item.name == "__typename":
            continue
        root = roots.get(item.name)
        if root is None:
            errors.append(
                GqlError(
                    f"Field '{item.name}' doesn't exist on type '{root_type}'",
                    "undefinedField",
                    path=[item.key],
                )
            )
            continue
        missing = [
            name
            for name, (type_text, has_default) in root.arguments.items()
            if type_text.endswith("!") and not has_default and name not in item.arguments
        ]
        if missing:
            errors.append(
                GqlError(
                    f"Field '{item.name}' is missing required arguments: {', '.join(missing)}",
                    "missingRequiredArguments",
                    path=[item.key],
                )
            )
        for name, value in item.arguments.items():
            spec = root.arguments.get(name)
            if spec is None:
                errors.append(
                    GqlError(
                        f"Field '{item.name}' doesn't accept argument '{name}'",
                        "argumentNotAccepted",
                        path=[item.key],
                    )
                )
                continue
            type_text = spec[0] if not spec[1] else spec[0].rstrip("!")
            if isinstance(value, Variable):
                if value.name in declared and not _compatible(declared[value.name], type_text):
                    errors.append(
                        GqlError(
                            f"Type mismatch on variable ${value.name} and argument {name} "
                            f"({declared[value.name]} / {spec[0]})",
                            "variableMismatch",
                            path=[item.key],
                        )
                    )
            elif not _valid(value, type_text, literal=True):
                errors.append(
                    GqlError(
                        f"Argument '{name}' on Field '{item.name}' has an invalid value "
                        f"({_show(value)}). Expected type '{spec[0]}'.",
                        "argumentLiteralsIncompatible",
                        path=[item.key],
                    )
                )
        _validate_selections(item.selections, root.returns, [item.key], errors)
        if not item.selections:
            errors.append(
                GqlError(
                    f"Field must have selections (field '{item.name}' returns {root.returns} "
                    "but has no selections.)",
                    "selectionMismatch",
                    path=[item.key],
                )
            )


def _show(value: Value) -> str:
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, Variable):
        return f"${value.name}"
    return json.dumps(value, default=str)


def validate(
    operation: Operation, variables: Mapping[str, object]
) -> tuple[list[GqlError], dict[str, Resolved]]:
    """Check the operation; return the errors and the variable values in force."""
    errors: list[GqlError] = []
    name = operation.name or "anonymous"
    declared: dict[str, str] = {}
    values: dict[str, Resolved] = {}
    for definition in operation.variables:
        if definition.name in declared:
            errors.append(GqlError(f"There can only be one variable named ${definition.name}"))
        declared[definition.name] = definition.type
        raw = variables.get(definition.name, resolve(definition.default, {}))
        if not _valid(raw, definition.type, literal=False):
            errors.append(
                GqlError(
                    f"Variable ${definition.name} of type {definition.type} was provided "
                    "invalid value",
                    "INVALID_VARIABLE",
                    extra={"value": raw},
                )
            )
        values[definition.name] = raw  # type: ignore[assignment]
    used = variables_used(operation)
    for missing in sorted(used - declared.keys()):
        errors.append(
            GqlError(
                f"Variable ${missing} is used by {name} but not declared", "variableNotDefined"
            )
        )
    for unused in sorted(declared.keys() - used):
        errors.append(
            GqlError(f"Variable ${unused} is declared by {name} but not used", "variableNotUsed")
        )
    roots = MUTATION_ROOTS if operation.kind == "mutation" else QUERY_ROOTS
    _validate_roots(operation, roots, declared, errors)
    return errors, values


# -- cost -------------------------------------------------------------------------------


def arguments(item: Field, variables: Mapping[str, Resolved]) -> dict[str, Resolved]:
    return {name: resolve(value, variables) for name, value in item.arguments.items()}


def _page_size(item: Field, variables: Mapping[str, Resolved]) -> int:
    args = arguments(item, variables)
    size = args.get("first")
    if size is None:
        size = args.get("last")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0


def requested_cost(operation: Operation, variables: Mapping[str, Resolved]) -> int:
    """Shopify's calculated cost: connections 2 + first x node, objects 1, mutations 10."""
    if operation.kind == "mutation":
        return MUTATION_COST * len(operation.selections)
    total = 0
    for item in operation.selections:
        if item.name in CONNECTIONS:
            total += 2 + _page_size(item, variables)
        elif item.selections:
            total += 1
    return total
