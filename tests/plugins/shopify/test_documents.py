"""Every GraphQL document the connector sends validates against the Admin API schema."""

from __future__ import annotations

import pytest

from clm_hub_plugins.shopify import documents as docs
from clm_hub_plugins.shopify.documents import TagMutation

from .schema import SPEC_NAME, SPEC_PLACES, Schema, load, problems, spec_path


@pytest.fixture(scope="module")
def schema() -> Schema:
    path = spec_path()
    if path is None:
        pytest.skip(f"{SPEC_NAME} not found in {', '.join(map(str, SPEC_PLACES))}")
    return load(path)


PUSH, _ = docs.push_document(
    [
        TagMutation("c0add", "tagsAdd", "gid://shopify/Customer/1", ("clm:stage:new",)),
        TagMutation("c0remove", "tagsRemove", "gid://shopify/Customer/1", ("clm:stage:lead",)),
    ]
)


@pytest.mark.parametrize(
    "document",
    [
        docs.CUSTOMERS,
        docs.ORDERS,
        docs.CUSTOMERS_COUNT,
        docs.ORDERS_COUNT,
        docs.BULK_RUN,
        docs.BULK_POLL,
        docs.BULK_CANCEL,
        PUSH,
    ],
    ids=lambda d: d.name,
)
def test_document_validates_against_the_schema(schema: Schema, document: docs.Document) -> None:
    assert problems(schema, document.text) == []


@pytest.mark.parametrize(
    ("root", "fields"), [("customers", docs.CUSTOMER_FIELDS), ("orders", docs.ORDER_FIELDS)]
)
def test_bulk_query_validates_against_the_schema(schema: Schema, root: str, fields: str) -> None:
    assert problems(schema, docs.bulk_query(root, fields)) == []


def test_legacy_bulk_poll_is_only_deprecated_not_invalid(schema: Schema) -> None:
    # currentBulkOperation is what API versions before 2026-01 have; deprecated since.
    assert problems(schema, docs.BULK_POLL_LEGACY.text) == [
        "QueryRoot.currentBulkOperation is deprecated"
    ]
    assert problems(schema, docs.BULK_POLL_LEGACY.text, allow_deprecated=True) == []


def test_documents_outside_the_schema_subset_are_known(schema: Schema) -> None:
    # shop and customerRequestDataErasure are real fields the subset file does not include;
    # if a newer subset adds them, validate CHECK and the erase document above instead.
    erase, _ = docs.erase_document([("e0", "gid://shopify/Customer/1")])
    assert problems(schema, docs.CHECK.text) == ["QueryRoot.shop does not exist"]
    assert problems(schema, erase.text) == ["Mutation.customerRequestDataErasure does not exist"]


def test_schema_checker_catches_deprecated_and_unknown_fields(schema: Schema) -> None:
    document = "query { customers(first: 1, sortKey: NEWEST) { nodes { email nickname } } }"
    assert problems(schema, document) == [
        "QueryRoot.customers(sortKey:) has no value NEWEST",
        "Customer.email is deprecated",
        "Customer.nickname does not exist",
    ]
