"""The GraphQL documents the connector sends, and what each costs up front.

Field names follow the 2026-07+ schema (``defaultEmailAddress`` instead of the deprecated
``email``; ``totalPriceSet`` instead of ``totalPrice``). Shopify's cost model: scalars 0,
objects 1, a connection 2 + ``first`` x the node cost, a mutation 10; the requested cost is
reserved before the query runs and the unused part refunded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BULK_CANCEL",
    "BULK_POLL",
    "BULK_POLL_LEGACY",
    "BULK_RUN",
    "CHECK",
    "CUSTOMERS",
    "CUSTOMERS_COUNT",
    "CUSTOMER_FIELDS",
    "MAX_QUERY_COST",
    "MUTATION_COST",
    "ORDERS",
    "ORDERS_COUNT",
    "ORDER_FIELDS",
    "Document",
    "TagMutation",
    "bulk_query",
    "erase_document",
    "push_document",
]

MAX_QUERY_COST = 1000
"""Shopify refuses any single query whose requested cost exceeds this (MAX_COST_EXCEEDED)."""
MUTATION_COST = 10


@dataclass(frozen=True)
class Document:
    """One GraphQL document and the cost charged against the bucket before sending it."""

    name: str
    text: str
    cost: float = 1.0


CUSTOMER_FIELDS = """id firstName lastName createdAt updatedAt tags
      defaultEmailAddress { emailAddress marketingState }
      defaultPhoneNumber { phoneNumber }"""

ORDER_FIELDS = """id createdAt processedAt updatedAt cancelledAt test email
      customer { id }
      displayFinancialStatus
      totalPriceSet { shopMoney { amount currencyCode } }
      totalRefundedSet { shopMoney { amount currencyCode } }"""


def _page_query(name: str, root: str, fields: str) -> str:
    return f"""query {name}($first: Int!, $after: String, $query: String) {{
  {root}(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      {fields}
    }}
  }}
}}"""


CUSTOMERS = Document("Customers", _page_query("Customers", "customers", CUSTOMER_FIELDS))
ORDERS = Document("Orders", _page_query("Orders", "orders", ORDER_FIELDS))


CUSTOMERS_COUNT = Document(
    "CustomersCount",
    "query CustomersCount($limit: Int) { customersCount(limit: $limit) { count precision } }",
)
ORDERS_COUNT = Document(
    "OrdersCount",
    "query OrdersCount($limit: Int) { ordersCount(limit: $limit) { count precision } }",
)

CHECK = Document("Shop", "query Shop { shop { name } }")

BULK_RUN = Document(
    "BulkRun",
    """mutation BulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status createdAt }
    userErrors { field message code }
  }
}""",
    cost=MUTATION_COST,
)

_BULK_FIELDS = "id status errorCode createdAt objectCount rootObjectCount url partialDataUrl"

BULK_POLL = Document(
    "BulkPoll",
    f"query BulkPoll($id: ID!) {{ bulkOperation(id: $id) {{ {_BULK_FIELDS} }} }}",
)
BULK_POLL_LEGACY = Document(
    "BulkPollLegacy",
    f"query BulkPollLegacy {{ currentBulkOperation(type: QUERY) {{ {_BULK_FIELDS} }} }}",
)

BULK_CANCEL = Document(
    "BulkCancel",
    """mutation BulkCancel($id: ID!) {
  bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } }
}""",
    cost=MUTATION_COST,
)


def bulk_query(root: str, fields: str) -> str:
    """The query a bulk operation runs: every node of ``root``, no pagination arguments."""
    return f"{{ {root} {{ edges {{ node {{ {fields} }} }} }} }}"


@dataclass(frozen=True)
class TagMutation:
    """One ``tagsAdd`` or ``tagsRemove`` call inside a batched document."""

    alias: str
    mutation: str
    customer_gid: str
    tags: tuple[str, ...]


def push_document(mutations: Sequence[TagMutation]) -> tuple[Document, dict[str, object]]:
    """One mutation document with an aliased field per tag call, and its variables."""
    header: list[str] = []
    body: list[str] = []
    variables: dict[str, object] = {}
    for m in mutations:
        header.append(f"${m.alias}Id: ID!, ${m.alias}Tags: [String!]!")
        body.append(
            f"  {m.alias}: {m.mutation}(id: ${m.alias}Id, tags: ${m.alias}Tags) "
            "{ node { id } userErrors { field message } }"
        )
        variables[f"{m.alias}Id"] = m.customer_gid
        variables[f"{m.alias}Tags"] = list(m.tags)
    text = "mutation PushTags(" + ", ".join(header) + ") {\n" + "\n".join(body) + "\n}"
    return Document("PushTags", text, cost=MUTATION_COST * len(mutations)), variables


def erase_document(gids: Sequence[tuple[str, str]]) -> tuple[Document, dict[str, object]]:
    """One ``customerRequestDataErasure`` per (alias, customer GID), batched."""
    header = ", ".join(f"${alias}: ID!" for alias, _ in gids)
    body = "\n".join(
        f"  {alias}: customerRequestDataErasure(customerId: ${alias}) "
        "{ customerId userErrors { field message code } }"
        for alias, _ in gids
    )
    text = f"mutation EraseCustomers({header}) {{\n{body}\n}}"
    variables: dict[str, object] = {alias: gid for alias, gid in gids}
    return Document("EraseCustomers", text, cost=MUTATION_COST * len(gids)), variables
