"""Typed calls to the Typeform API over the hub's HTTP client, with Typeform's errors.

The hub's client already sorts failures into typed errors (401/403 ``AuthError``, other
4xx ``RequestRejected``, 429 ``RateLimited`` honouring ``Retry-After``, 5xx
``UpstreamError``). This module re-raises 401/403/404/422 with Typeform's own ``code`` and
``description`` (surveys.md A5) and says which setting to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from clm_hub.connectors import HttpClient
from clm_hub.errors import AuthError, ConnectorError, MalformedResponse, RequestRejected

__all__ = ["Api", "typeform_error"]

ModelT = TypeVar("ModelT", bound=BaseModel)
Params = Mapping[str, str | int]

# The client keeps the start of an error body in its message; Typeform's body is small.
_CODE = re.compile(r'"code"\s*:\s*"([^"\\]*)"')
_DESCRIPTION = re.compile(r'"description"\s*:\s*"((?:[^"\\]|\\.)*)"')
_FIELD = re.compile(r'"field"\s*:\s*"([^"\\]*)"')

SCOPES = "forms:read responses:read"
_HOSTS = 'EU data-centre accounts need region = "eu" (api.eu.typeform.com) or "eu-2025"'


def typeform_error(exc: ConnectorError) -> str:
    """``CODE: description`` from a refused request's body, else the error's own text."""
    text = str(exc)
    code, description = _CODE.search(text), _DESCRIPTION.search(text)
    if description is None:
        return text.split(": ", 1)[1] if ": " in text else text
    detail = description.group(1).replace('\\"', '"')
    field = _FIELD.search(text)
    where = f" (parameter {field.group(1)})" if field else ""
    return f"{code.group(1)}: {detail}{where}" if code else f"{detail}{where}"


def _refusal(exc: ConnectorError, method: str, path: str) -> ConnectorError:
    status = exc.status_code
    said = typeform_error(exc)
    where = f"{method} {path}"
    if isinstance(exc, AuthError) and status == 401:
        return AuthError(
            exc.connector,
            f"Typeform refused the token on {where} (401, {said}). Set token (or token_file) "
            f"to a personal access token (tfp_...) of the account; {_HOSTS}.",
            status_code=status,
        )
    if isinstance(exc, AuthError) and status == 403:
        return AuthError(
            exc.connector,
            f"Typeform refused {where} (403, {said}): the token lacks a scope or the plan "
            f"lacks the feature. The connector needs {SCOPES} (and responses:write to erase).",
            status_code=status,
        )
    if isinstance(exc, RequestRejected) and status == 404:
        return RequestRejected(
            exc.connector,
            f"Typeform does not know {where} (404, {said}): check the form ids in `forms` "
            f"and the region; {_HOSTS}.",
            status_code=status,
        )
    if isinstance(exc, RequestRejected) and status in (400, 422):
        return RequestRejected(
            exc.connector, f"Typeform rejected {where} ({status}, {said})", status_code=status
        )
    return exc


class Api:
    """The connector's HTTP client with Typeform's JSON parsed into models."""

    def __init__(self, http: HttpClient, connector_id: str) -> None:
        self.http = http
        self.connector_id = connector_id

    async def get(self, path: str, model: type[ModelT], *, params: Params | None = None) -> ModelT:
        """GET ``path`` and parse the body into ``model``; a body of the wrong shape is
        retried like malformed JSON, then reported."""

        def parse(response: httpx.Response) -> ModelT:
            body: object = self.http.parse_json(response)
            try:
                return model.model_validate(body)
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "body"
                raise MalformedResponse(
                    self.connector_id,
                    f"GET {path} answered {response.status_code} with an unexpected body "
                    f"({where}: {first['msg']})",
                    status_code=response.status_code,
                ) from None

        try:
            return await self.http.call("GET", path, parse=parse, params=params)
        except (AuthError, RequestRejected) as exc:
            raise _refusal(exc, "GET", path) from None

    async def send(self, method: str, path: str, *, params: Params | None = None) -> None:
        """Send a request whose answer has no body worth reading (``DELETE``: 204)."""
        try:
            await self.http.request(method, path, params=params)
        except (AuthError, RequestRejected) as exc:
            raise _refusal(exc, method, path) from None
