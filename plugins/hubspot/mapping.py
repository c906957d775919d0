"""HubSpot objects -> the hub's records: which properties are read and what they mean."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from clm_hub import ContactRecord, OrderRecord, OrderStatus

from .vendor import CrmObject, JsonObject, parse_timestamp

__all__ = [
    "CONTACTS",
    "DEALS",
    "ORDERS",
    "ObjectKind",
    "OrderRules",
    "deal_to_order",
    "order_to_order",
    "row_id",
    "to_contact",
]


@dataclass(frozen=True)
class ObjectKind:
    """A CRM object type as the connector reads it."""

    name: str
    """Path segment, e.g. ``contacts`` in ``/crm/v3/objects/contacts``."""
    modified_property: str
    """Last-modified property used for incremental search (contacts differ from the rest)."""
    properties: tuple[str, ...]
    """Properties requested on every read."""
    id_prefix: str = ""
    """Prefix of the external id, where two object types feed one stream."""

    @property
    def path(self) -> str:
        return f"/crm/v3/objects/{self.name}"


CONTACTS = ObjectKind(
    "contacts",
    "lastmodifieddate",
    (
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "createdate",
        "lastmodifieddate",
        "lifecyclestage",
        "hs_email_optout",
    ),
)
DEALS = ObjectKind(
    "deals",
    "hs_lastmodifieddate",
    (
        "dealname",
        "amount",
        "deal_currency_code",
        "closedate",
        "dealstage",
        "pipeline",
        "hs_is_closed_won",
        "hs_is_closed",
        "createdate",
        "hs_lastmodifieddate",
    ),
    id_prefix="deal:",
)
ORDERS = ObjectKind(
    "orders",
    "hs_lastmodifieddate",
    (
        "hs_order_name",
        "hs_total_price",
        "hs_currency_code",
        "hs_pipeline_stage",
        "hs_external_order_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ),
    id_prefix="order:",
)


@dataclass(frozen=True)
class OrderRules:
    """What makes a deal or an order a paid purchase, from the settings."""

    paid_deal_stages: frozenset[str]
    use_closed_won_flag: bool
    paid_order_stages: frozenset[str]
    default_currency: str | None


def row_id(row: JsonObject) -> str | None:
    """The record id of a raw row, for rejections."""
    value = row.get("id")
    return None if value is None else str(value)


def to_contact(row: JsonObject) -> ContactRecord:
    """A contact row -> ``ContactRecord`` (raises on a malformed row)."""
    obj = CrmObject.model_validate(row)
    created = obj.prop("createdate")
    modified = obj.prop(CONTACTS.modified_property)
    optout = obj.prop("hs_email_optout")
    return ContactRecord(
        external_id=obj.id,
        email=obj.prop("email"),
        phone=obj.prop("phone") or obj.prop("mobilephone"),
        first_name=obj.prop("firstname"),
        last_name=obj.prop("lastname"),
        created_at=parse_timestamp(created) if created else obj.createdAt,
        updated_at=parse_timestamp(modified) if modified else obj.updatedAt,
        # Opted out of all email is a clear "no"; not opted out is not consent.
        marketing_consent=False if optout == "true" else None,
        deleted=obj.archived,
    )


def _amount(value: str | None, *, what: str) -> Decimal:
    if value is None:
        raise ValueError(f"{what} has no amount")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} amount {value!r} is not a number") from None
    return amount


def _currency(value: str | None, rules: OrderRules, *, what: str) -> str:
    currency = (value or rules.default_currency or "").upper()
    if not currency:
        raise ValueError(f"{what} has no currency; set default_currency")
    return currency


def deal_status(obj: CrmObject, rules: OrderRules) -> OrderStatus:
    """Won deals are paid, lost (closed, not won) deals cancelled, open deals pending."""
    won = obj.prop("dealstage") in rules.paid_deal_stages or (
        rules.use_closed_won_flag and obj.prop("hs_is_closed_won") == "true"
    )
    if won:
        return OrderStatus.PAID
    if obj.prop("hs_is_closed") == "true" or obj.prop("dealstage") == "closedlost":
        return OrderStatus.CANCELLED
    return OrderStatus.PENDING


def deal_to_order(
    row: JsonObject, *, contacts: Mapping[str, str], rules: OrderRules
) -> OrderRecord:
    """A deal row -> ``OrderRecord``; ``contacts`` maps deal id -> associated contact id."""
    obj = CrmObject.model_validate(row)
    status = deal_status(obj, rules)
    placed = obj.prop("closedate") or obj.prop("createdate")
    modified = obj.prop(DEALS.modified_property)
    raw_amount = obj.prop("amount")
    # An open or lost deal without an amount is common and harmless; a won one is not.
    if raw_amount is None and status is not OrderStatus.PAID:
        raw_amount = "0"
    return OrderRecord(
        external_id=DEALS.id_prefix + obj.id,
        customer_external_id=contacts.get(obj.id),
        placed_at=parse_timestamp(placed) if placed else _required(obj.createdAt, "closedate"),
        updated_at=parse_timestamp(modified) if modified else obj.updatedAt,
        total=_amount(raw_amount, what="won deal"),
        currency=_currency(obj.prop("deal_currency_code"), rules, what="deal"),
        status=status,
        deleted=obj.archived,
    )


def order_to_order(
    row: JsonObject, *, contacts: Mapping[str, str], rules: OrderRules
) -> OrderRecord:
    """A commerce order row -> ``OrderRecord``."""
    obj = CrmObject.model_validate(row)
    stage = obj.prop("hs_pipeline_stage")
    paid = not rules.paid_order_stages or stage in rules.paid_order_stages
    placed = obj.prop("hs_createdate")
    modified = obj.prop(ORDERS.modified_property)
    return OrderRecord(
        external_id=ORDERS.id_prefix + obj.id,
        customer_external_id=contacts.get(obj.id),
        placed_at=parse_timestamp(placed) if placed else _required(obj.createdAt, "hs_createdate"),
        updated_at=parse_timestamp(modified) if modified else obj.updatedAt,
        total=_amount(obj.prop("hs_total_price"), what="order"),
        currency=_currency(obj.prop("hs_currency_code"), rules, what="order"),
        status=OrderStatus.PAID if paid else OrderStatus.PENDING,
        deleted=obj.archived,
    )


def _required(value: datetime | None, name: str) -> datetime:
    if value is None:
        raise ValueError(f"missing {name}")
    return value
