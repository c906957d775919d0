"""Typed calls to the HubSpot API over the hub's HTTP client, and small shared helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from clm_hub import PushOutcome, PushStatus
from clm_hub.connectors import HttpClient
from clm_hub.errors import MalformedResponse, RequestRejected

from .limits import HubSpotLimiter

__all__ = ["BATCH_LIMIT", "Api", "chunks", "outcome", "rejection_reason", "short_reason"]

BATCH_LIMIT = 100
"""Inputs per call of every CRM batch endpoint (read, update, associations)."""

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")
_CATEGORY = re.compile(r'"category"\s*:\s*"([A-Z_]+)"')
_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)')


class Api:
    """The connector's HTTP client with HubSpot's JSON parsed into models."""

    def __init__(self, http: HttpClient, connector_id: str) -> None:
        self.http = http
        self.connector_id = connector_id

    def _lane(self, search: bool) -> AbstractContextManager[None]:
        limiter = self.http.limiter
        if search and isinstance(limiter, HubSpotLimiter):
            return limiter.search_lane()
        return nullcontext()

    async def call(
        self,
        method: str,
        path: str,
        model: type[ModelT],
        *,
        json: object = None,
        params: Mapping[str, str | int] | None = None,
        search: bool = False,
    ) -> ModelT:
        """Send a request and parse its body into ``model``; a body of the wrong shape is
        retried like malformed JSON, then reported. ``search`` paces it as CRM search."""

        def parse(response: httpx.Response) -> ModelT:
            body: object = self.http.parse_json(response)
            try:
                parsed: ModelT = model.model_validate(body)
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "body"
                raise MalformedResponse(
                    self.connector_id,
                    f"{method} {path} answered {response.status_code} with an unexpected "
                    f"body ({where}: {first['msg']})",
                    status_code=response.status_code,
                ) from None
            return parsed

        with self._lane(search):
            return await self.http.call(method, path, parse=parse, json=json, params=params)

    async def send(self, method: str, path: str, *, json: object = None) -> httpx.Response:
        """Send a request whose answer has no body worth parsing (201, 204)."""
        return await self.http.request(method, path, json=json)

    async def create(self, path: str, body: object) -> bool:
        """POST a definition; ``False`` when HubSpot answers 409 (it exists already)."""
        try:
            await self.send("POST", path, json=body)
        except RequestRejected as exc:
            if exc.status_code != 409:
                raise
            return False
        return True


def chunks(items: Sequence[T], size: int = BATCH_LIMIT) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def outcome(external_id: str, status: PushStatus, reason: str | None = None) -> PushOutcome:
    return PushOutcome(external_id=external_id, status=status, reason=reason)


def short_reason(exc: Exception) -> str:
    """An error's message without the ``connector:`` prefix."""
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


def rejection_reason(exc: RequestRejected) -> str:
    """HubSpot's category and message from a rejection, else the rejection's text.

    The HTTP client keeps only the start of an error body in its message; the message field
    is read from there (see the report to the core: errors could carry the parsed body).
    """
    text = str(exc)
    category = _CATEGORY.search(text)
    message = _MESSAGE.search(text)
    if message:
        detail = message.group(1).replace('\\"', '"')
        return f"{category.group(1)}: {detail}" if category else detail
    return short_reason(exc)
