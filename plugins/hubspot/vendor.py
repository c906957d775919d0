"""HubSpot's JSON shapes, parsed at the edge into typed models.

Only the fields the connector reads are declared; everything else is ignored, so additions
on HubSpot's side never break a sync. Row-level objects stay raw (``JsonObject``) inside the
envelopes, so one malformed row is rejected with its reason while the rest of the page goes on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AssociationBatch",
    "AssociationRow",
    "BatchError",
    "BatchResponse",
    "CrmObject",
    "ErrorBody",
    "JsonObject",
    "ObjectPage",
    "PropertyDefinition",
    "PropertyOption",
    "RateLimitBody",
    "TokenResponse",
    "WebhookEventPayload",
    "from_ms",
    "parse_timestamp",
    "to_ms",
]

JsonObject: TypeAlias = dict[str, object]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class NextPage(_Vendor):
    after: str
    link: str | None = None


class Paging(_Vendor):
    next: NextPage | None = None


class ObjectPage(_Vendor):
    """A page of the list endpoint (``GET /crm/v3/objects/{type}``) or of CRM search."""

    results: list[JsonObject]
    paging: Paging | None = None
    total: int | None = None

    @property
    def next_after(self) -> str | None:
        return self.paging.next.after if self.paging and self.paging.next else None


class CrmObject(_Vendor):
    """One CRM record: an id and its properties, every value a string (or null)."""

    id: str = Field(min_length=1)
    properties: dict[str, str | None] = Field(default_factory=dict)
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    archived: bool = False

    def prop(self, name: str) -> str | None:
        """A property's value, with HubSpot's empty string read as missing."""
        value = self.properties.get(name)
        return value if value not in (None, "") else None


class BatchError(_Vendor):
    """One entry of a batch response's ``errors`` (a 207 multi-status)."""

    status: str | None = None
    category: str = "UNKNOWN"
    message: str = ""
    context: dict[str, list[str]] = Field(default_factory=dict)


class BatchResponse(_Vendor):
    """``POST .../batch/{read,update}``: the records that landed and the per-record errors."""

    status: str | None = None
    results: list[JsonObject] = Field(default_factory=list)
    errors: list[BatchError] = Field(default_factory=list)
    numErrors: int | None = None


class ObjectRef(_Vendor):
    id: str


class AssociationType(_Vendor):
    category: str | None = None
    typeId: int | None = None
    label: str | None = None


class AssociatedObject(_Vendor):
    toObjectId: str
    associationTypes: list[AssociationType] = Field(default_factory=list)


class AssociationRow(_Vendor):
    from_: ObjectRef = Field(alias="from")
    to: list[AssociatedObject] = Field(default_factory=list)
    paging: Paging | None = None


class AssociationBatch(_Vendor):
    """``POST /crm/v4/associations/{from}/{to}/batch/read``."""

    status: str | None = None
    results: list[AssociationRow] = Field(default_factory=list)
    errors: list[BatchError] = Field(default_factory=list)


class PropertyOption(_Vendor):
    label: str
    value: str
    displayOrder: int | None = None
    hidden: bool = False


class PropertyDefinition(_Vendor):
    """``GET /crm/v3/properties/{type}/{name}``."""

    name: str
    label: str | None = None
    type: str | None = None
    fieldType: str | None = None
    groupName: str | None = None
    options: list[PropertyOption] = Field(default_factory=list)


class ErrorDetail(_Vendor):
    message: str = ""
    code: str | None = None
    context: dict[str, list[str]] = Field(default_factory=dict)


class ErrorBody(_Vendor):
    """HubSpot's standard error body (spec ``Error``)."""

    status: str | None = None
    message: str = ""
    category: str | None = None
    subCategory: str | None = None
    correlationId: str | None = None
    errors: list[ErrorDetail] = Field(default_factory=list)


class RateLimitBody(_Vendor):
    """The body of a 429: which policy was hit."""

    errorType: str | None = None
    policyName: str | None = None
    message: str = ""


class TokenResponse(_Vendor):
    """``POST /oauth/v1/token`` with ``grant_type=refresh_token``."""

    access_token: str = Field(min_length=1)
    refresh_token: str | None = None
    expires_in: int = Field(ge=0)
    token_type: str | None = None


class WebhookEventPayload(_Vendor):
    """One event of a webhook delivery (a delivery is a JSON array of up to 100)."""

    eventId: int
    subscriptionId: int | None = None
    portalId: int | None = None
    occurredAt: int
    subscriptionType: str
    objectId: int
    propertyName: str | None = None
    propertyValue: str | None = None
    changeSource: str | None = None
    mergedObjectIds: list[int] = Field(default_factory=list)
    primaryObjectId: int | None = None


def parse_timestamp(value: str) -> datetime:
    """A HubSpot date/datetime value: epoch milliseconds, ISO-8601, or a bare date (UTC)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return from_ms(int(text))
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return parsed.astimezone(UTC)


def to_ms(value: datetime) -> int:
    """Epoch milliseconds, the form search filters take."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=value)
