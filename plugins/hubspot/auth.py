"""OAuth 2.0 for HubSpot public apps: short-lived access tokens from a long-lived refresh token.

HubSpot's docs say to refresh proactively from ``expires_in`` (about 30 minutes) rather than
rely on a 401, so the token is refreshed when missing or about to expire; a 401 on a token
we believed valid (revoked, clock drift) triggers one refresh and one retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable

import httpx
import structlog
from pydantic import ValidationError

from clm_hub.errors import AuthError, MalformedResponse, RateLimited, UpstreamError

from .vendor import ErrorBody, TokenResponse

__all__ = ["TOKEN_PATH", "HubSpotOAuth"]

TOKEN_PATH = "/oauth/v1/token"
log = structlog.get_logger("clm_hub.connector.hubspot.oauth")


class HubSpotOAuth(httpx.Auth):
    """Bearer auth with an access token refreshed through ``POST /oauth/v1/token``."""

    requires_request_body = True
    requires_response_body = True

    def __init__(
        self,
        *,
        connector: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        refresh_margin: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connector = connector
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._margin = refresh_margin
        self._monotonic = monotonic
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._listeners: list[Callable[[Iterable[str]], None]] = []
        self.refreshes = 0

    def on_new_secrets(self, listener: Callable[[Iterable[str]], None]) -> None:
        """Call ``listener`` with every newly issued token (e.g. ``Redactor.add``)."""
        self._listeners.append(listener)

    @property
    def expired(self) -> bool:
        """No access token yet, or it expires within the refresh margin."""
        return self._access_token is None or self._monotonic() >= self._expires_at - self._margin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        refreshed = False
        if self.expired:
            yield from self._refresh()
            refreshed = True
        used = self._access_token
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code != 401 or refreshed:
            return
        if self._access_token == used:  # nobody refreshed it meanwhile
            yield from self._refresh()
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        yield request

    def _refresh(self) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield httpx.Request(
            "POST",
            self.token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "refresh_token": self._refresh_token,
            },
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        where = f"POST {TOKEN_PATH}"
        if status == 429:
            raise RateLimited(self.connector, f"{where} was rate limited (429)")
        if status >= 500:
            raise UpstreamError(self.connector, f"{where} failed with {status}", status_code=status)
        if status != 200:
            raise AuthError(
                self.connector,
                f"HubSpot refused the OAuth refresh token ({status} {_reason(response)}). "
                "The app may have been uninstalled or the token revoked: reinstall the app and "
                "set this connector's refresh_token, client_id and client_secret again.",
                status_code=status,
            )
        try:
            token = TokenResponse.model_validate_json(response.content)
        except ValidationError:
            raise MalformedResponse(
                self.connector, f"{where} answered 200 without an access token", status_code=200
            ) from None
        # Tell the redactor before anything could log the new token.
        for listener in self._listeners:
            listener([token.access_token, *([token.refresh_token] if token.refresh_token else [])])
        self._access_token = token.access_token
        self._expires_at = self._monotonic() + token.expires_in
        if token.refresh_token:
            self._refresh_token = token.refresh_token
        self.refreshes += 1
        log.info("hubspot.oauth.refreshed", connector=self.connector, expires_in=token.expires_in)


def _reason(response: httpx.Response) -> str:
    """HubSpot's short reason (``BAD_REFRESH_TOKEN``...) without echoing anything secret."""
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return "no details"
    return body.status or body.category or "no details"
