"""Shopify's JSON shapes, parsed at the edge and turned into clm_hub records.

Two families: Admin GraphQL nodes (camelCase, GIDs, money as ``MoneyBag``) read by the
pulls and bulk operations, and REST-shaped webhook payloads (snake_case, integer ids,
``total_price`` strings). Both end in the same ``ContactRecord`` / ``OrderRecord``.

External ids are Shopify's numeric ids as strings (``"7001"``): they are what REST webhooks,
compliance webhooks and GraphQL (``legacyResourceId``) have in common.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from clm_hub import ContactRecord, OrderRecord, OrderStatus

__all__ = [
    "BulkOperationNode",
    "BulkRunPayload",
    "Connection",
    "CostExtension",
    "Count",
    "GraphQLEnvelope",
    "GraphQLError",
    "JsonObject",
    "MutationPayload",
    "PageInfo",
    "RestCustomer",
    "RestOrder",
    "ThrottleStatus",
    "UserError",
    "contact_from_node",
    "contact_from_rest",
    "customer_gid",
    "legacy_id",
    "order_from_node",
    "order_from_rest",
    "order_status",
]

JsonObject = Mapping[str, object]

# Email marketing states that mean "may be emailed"; PENDING is a double opt-in not yet
# confirmed, so it is not consent yet.
_CONSENTED = frozenset({"SUBSCRIBED"})


def legacy_id(gid: str, kind: str) -> str:
    """The numeric id inside ``gid://shopify/<kind>/<n>``; raise ``ValueError`` otherwise."""
    prefix = f"gid://shopify/{kind}/"
    if not gid.startswith(prefix):
        raise ValueError(f"expected a {kind} id like {prefix}123, got {gid[:60]!r}")
    number = gid.removeprefix(prefix).split("?", 1)[0]
    if not number.isdigit():
        raise ValueError(f"expected a numeric {kind} id, got {gid[:60]!r}")
    return number


def customer_gid(external_id: str) -> str:
    """The GraphQL id of a customer from its numeric id (GIDs are accepted as they are)."""
    if external_id.startswith("gid://"):
        legacy_id(external_id, "Customer")
        return external_id
    if not external_id.isdigit():
        raise ValueError(f"{external_id!r} is not a Shopify customer id")
    return f"gid://shopify/Customer/{external_id}"


class _Vendor(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


# -- GraphQL envelope --------------------------------------------------------------------


class ThrottleStatus(_Vendor):
    """The bucket as Shopify sees it after the call."""

    maximum_available: float
    currently_available: float
    restore_rate: float


class CostExtension(_Vendor):
    """``extensions.cost`` of a GraphQL response."""

    requested_query_cost: float | None = None
    actual_query_cost: float | None = None
    throttle_status: ThrottleStatus | None = None


class _ErrorExtensions(_Vendor):
    code: str | None = None


class GraphQLError(_Vendor):
    """One entry of a response's top-level ``errors``."""

    message: str = ""
    path: list[str | int] | None = None
    extensions: _ErrorExtensions | None = None

    @property
    def code(self) -> str | None:
        return self.extensions.code if self.extensions else None


class _Extensions(_Vendor):
    cost: CostExtension | None = None
    search: list[dict[str, object]] | None = None


class GraphQLEnvelope(_Vendor):
    """A GraphQL response before its ``data`` is read."""

    data: dict[str, object] | None = None
    errors: list[GraphQLError] | str | None = None
    extensions: _Extensions | None = None

    @property
    def error_list(self) -> list[GraphQLError]:
        if isinstance(self.errors, str):
            return [GraphQLError(message=self.errors)]
        return list(self.errors or [])


class UserError(_Vendor):
    """A payload's ``userErrors`` entry: the mutation ran but refused this input."""

    field: list[str] | None = None
    message: str
    code: str | None = None


class PageInfo(_Vendor):
    has_next_page: bool
    end_cursor: str | None = None


class Connection(_Vendor):
    page_info: PageInfo
    nodes: list[dict[str, object]]


class Count(_Vendor):
    count: int
    precision: str = "EXACT"


class BulkOperationNode(_Vendor):
    """A ``BulkOperation`` as polled."""

    id: str
    status: str
    error_code: str | None = None
    created_at: datetime | None = None
    object_count: int | None = None
    root_object_count: int | None = None
    url: str | None = None
    partial_data_url: str | None = None


class BulkRunPayload(_Vendor):
    bulk_operation: BulkOperationNode | None = None
    user_errors: list[UserError] = Field(default_factory=list)


class MutationPayload(_Vendor):
    """``tagsAdd`` / ``tagsRemove`` / ``customerRequestDataErasure`` payloads."""

    user_errors: list[UserError] = Field(default_factory=list)


# -- GraphQL nodes -----------------------------------------------------------------------


class _MoneyV2(_Vendor):
    amount: Decimal
    currency_code: str


class _MoneyBag(_Vendor):
    shop_money: _MoneyV2


class _EmailAddress(_Vendor):
    email_address: str | None = None
    marketing_state: str | None = None


class _PhoneNumber(_Vendor):
    phone_number: str | None = None


class _CustomerNode(_Vendor):
    id: str
    first_name: str | None = None
    last_name: str | None = None
    created_at: datetime
    updated_at: datetime
    tags: list[str] = Field(default_factory=list)
    default_email_address: _EmailAddress | None = None
    default_phone_number: _PhoneNumber | None = None


class _Ref(_Vendor):
    id: str


class _OrderNode(_Vendor):
    id: str
    created_at: datetime
    processed_at: datetime | None = None
    updated_at: datetime
    cancelled_at: datetime | None = None
    email: str | None = None
    customer: _Ref | None = None
    display_financial_status: str | None = None
    total_price_set: _MoneyBag
    total_refunded_set: _MoneyBag | None = None


def contact_from_node(row: JsonObject) -> ContactRecord:
    """A ``Customer`` node (paged or bulk) as a contact."""
    node = _CustomerNode.model_validate(row)
    email = node.default_email_address
    return ContactRecord(
        external_id=legacy_id(node.id, "Customer"),
        email=email.email_address if email else None,
        phone=node.default_phone_number.phone_number if node.default_phone_number else None,
        first_name=node.first_name,
        last_name=node.last_name,
        created_at=node.created_at,
        updated_at=node.updated_at,
        marketing_consent=(
            None
            if email is None or email.marketing_state is None
            else email.marketing_state in _CONSENTED
        ),
        tags=tuple(node.tags),
    )


def order_status(
    financial_status: str | None, cancelled: bool, total: Decimal, refunded: Decimal
) -> OrderStatus:
    """What an order means for revenue, from Shopify's financial status and cancellation.

    ``VOIDED`` (authorisation released) and ``EXPIRED`` (authorisation lapsed) never brought
    money in, so they count as cancelled; authorised or partly paid orders are pending.
    """
    status = (financial_status or "").upper()
    if cancelled or status in ("VOIDED", "EXPIRED"):
        return OrderStatus.CANCELLED
    if status == "REFUNDED" or (total > 0 and refunded >= total):
        return OrderStatus.REFUNDED
    if status == "PARTIALLY_REFUNDED" or refunded > 0:
        return OrderStatus.PARTIALLY_REFUNDED
    if status == "PAID":
        return OrderStatus.PAID
    return OrderStatus.PENDING


def order_from_node(row: JsonObject) -> OrderRecord:
    """An ``Order`` node (paged or bulk) as an order, amounts in the shop's currency."""
    node = _OrderNode.model_validate(row)
    money = node.total_price_set.shop_money
    refunded = node.total_refunded_set.shop_money.amount if node.total_refunded_set else Decimal(0)
    return OrderRecord(
        external_id=legacy_id(node.id, "Order"),
        customer_external_id=legacy_id(node.customer.id, "Customer") if node.customer else None,
        email=node.email,
        # processedAt is the purchase date; createdAt differs for imported/backdated orders.
        placed_at=node.processed_at or node.created_at,
        updated_at=node.updated_at,
        total=money.amount,
        refunded=refunded,
        currency=money.currency_code,
        status=order_status(
            node.display_financial_status, node.cancelled_at is not None, money.amount, refunded
        ),
    )


# -- REST-shaped webhook payloads --------------------------------------------------------


class _Rest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _RestConsent(_Rest):
    state: str | None = None


class RestCustomer(_Rest):
    """A customer as webhooks carry it (``customers/create``, ``customers/update``)."""

    id: int
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tags: str = ""
    email_marketing_consent: _RestConsent | None = None


class _RestRef(_Rest):
    id: int


class _RestMoney(_Rest):
    amount: Decimal
    currency_code: str


class _RestMoneySet(_Rest):
    shop_money: _RestMoney


class _RestTransaction(_Rest):
    kind: str | None = None
    status: str | None = None
    amount: Decimal = Decimal(0)
    currency: str | None = None


class _RestRefund(_Rest):
    transactions: list[_RestTransaction] = Field(default_factory=list)


class RestOrder(_Rest):
    """An order as webhooks carry it (``orders/create``, ``orders/paid`` ...)."""

    id: int
    email: str | None = None
    customer: _RestRef | None = None
    created_at: datetime
    processed_at: datetime | None = None
    updated_at: datetime | None = None
    cancelled_at: datetime | None = None
    financial_status: str | None = None
    currency: str
    total_price: Decimal
    total_price_set: _RestMoneySet | None = None
    refunds: list[_RestRefund] = Field(default_factory=list)


def contact_from_rest(payload: RestCustomer) -> ContactRecord:
    """A webhook customer as a contact (REST tags are one comma-separated string)."""
    consent = payload.email_marketing_consent
    return ContactRecord(
        external_id=str(payload.id),
        email=payload.email,
        phone=payload.phone,
        first_name=payload.first_name,
        last_name=payload.last_name,
        created_at=payload.created_at,
        updated_at=payload.updated_at,
        marketing_consent=(
            None
            if consent is None or consent.state is None
            else consent.state.upper() in _CONSENTED
        ),
        tags=tuple(tag.strip() for tag in payload.tags.split(",") if tag.strip()),
    )


def order_from_rest(payload: RestOrder) -> OrderRecord:
    """A webhook order as an order; refunds are summed from successful refund transactions."""
    if payload.total_price_set is not None:
        total = payload.total_price_set.shop_money.amount
        currency = payload.total_price_set.shop_money.currency_code
    else:
        total, currency = payload.total_price, payload.currency
    refunded = sum(
        (
            t.amount
            for refund in payload.refunds
            for t in refund.transactions
            if t.kind == "refund" and t.status == "success" and t.currency in (None, currency)
        ),
        Decimal(0),
    )
    if not payload.refunds and (payload.financial_status or "").lower() == "refunded":
        refunded = total
    return OrderRecord(
        external_id=str(payload.id),
        customer_external_id=str(payload.customer.id) if payload.customer else None,
        email=payload.email,
        placed_at=payload.processed_at or payload.created_at,
        updated_at=payload.updated_at,
        total=total,
        refunded=min(refunded, total),
        currency=currency,
        status=order_status(
            payload.financial_status, payload.cancelled_at is not None, total, refunded
        ),
    )
