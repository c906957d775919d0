"""The exceptions clm-hub raises, one type per thing the runner must do differently.

::

    ClmHubError                 base of everything below
      ConfigError               a setting is missing or invalid: fix the config file or env
      PluginError               a plugin failed to load or registered badly
      StoreError                the canonical store is unreachable or its schema is not current
      ConnectorError            carries the connector name; the tool misbehaved or refused
        AuthError               credentials rejected (401/403); never retried
        RateLimited             the tool's rate limit is hit; retried after ``retry_after``
          BudgetExhausted       a daily allowance is spent; not retried before it resets
        UpstreamError           5xx, timeout or network failure; retried
        RequestRejected         the tool rejected the request itself (other 4xx); not retried
        MalformedResponse       the tool answered with something that is not what its API says
        PaginationLoopError     a page token repeated, so paging would never end

The type decides what the runner does; the message tells the user what to do.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BudgetExhausted",
    "ClmHubError",
    "ConfigError",
    "ConnectorError",
    "MalformedResponse",
    "PaginationLoopError",
    "PluginError",
    "RateLimited",
    "RequestRejected",
    "StoreError",
    "UpstreamError",
]


class ClmHubError(Exception):
    """Base class of every error clm-hub raises on purpose."""


class ConfigError(ClmHubError):
    """A setting is missing or invalid; the message names the key and the file."""


class PluginError(ClmHubError):
    """A plugin failed to load or registered something invalid."""


class StoreError(ClmHubError):
    """The canonical store cannot be used as it is (unreachable, schema out of date)."""


class ConnectorError(ClmHubError):
    """A connector's tool misbehaved or refused; ``connector`` names which one."""

    retriable = False

    def __init__(self, connector: str, message: str, *, status_code: int | None = None) -> None:
        super().__init__(f"{connector}: {message}")
        self.connector = connector
        self.status_code = status_code


class AuthError(ConnectorError):
    """The tool rejected the credentials (401/403). Never retried: a human must act."""


class RateLimited(ConnectorError):
    """The tool's rate limit is exhausted; retry after ``retry_after`` seconds."""

    retriable = True

    def __init__(
        self,
        connector: str,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
    ) -> None:
        super().__init__(connector, message, status_code=status_code)
        self.retry_after = retry_after


class BudgetExhausted(RateLimited):
    """A daily (or longer) allowance is spent. Retrying within the run only burns time;
    the next scheduled run after ``retry_after`` seconds picks up."""

    retriable = False


class UpstreamError(ConnectorError):
    """A 5xx answer, a timeout or a network failure; retried with backoff."""

    retriable = True


class RequestRejected(ConnectorError):
    """The tool rejected the request itself (a 4xx other than auth and rate limit)."""


class MalformedResponse(ConnectorError):
    """The tool answered with a body that does not match its documented shape."""

    retriable = True


class PaginationLoopError(ConnectorError):
    """A page token came back twice; following it would loop forever."""
