"""Masking of secrets in every log line and error message.

A ``Redactor`` knows the secret values in force (tokens, passwords, webhook keys) and
replaces them wherever they appear; URLs lose their query strings, where tools like to put
keys. One instance is built from the settings and handed to logging and to HTTP clients;
there is no module-level registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, SecretStr

__all__ = ["MASK", "Redactor", "secrets_in"]

MASK = "**********"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words and numbers
_QUERY = re.compile(r"(https?://[^\s?#\"']+)\?[^\s#\"']*")
_SENSITIVE_HEADERS = frozenset(
    {"authorization", "x-shopify-access-token", "x-api-key", "api-token", "cookie", "set-cookie"}
)


class Redactor:
    """Replaces known secret values and URL query strings in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Learn more secret values (e.g. a refreshed OAuth token)."""
        fresh = {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH} - self._secrets
        if not fresh:
            return
        self._secrets |= fresh
        # Longest first so a secret that contains another is masked whole.
        alternatives = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))

    def text(self, value: str) -> str:
        """Return ``value`` with every known secret masked and URL query strings dropped."""
        if self._pattern is not None:
            value = self._pattern.sub(MASK, value)
        return _QUERY.sub(r"\1?" + MASK, value)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Return a copy of HTTP headers safe to log."""
        return {
            k: MASK if k.lower() in _SENSITIVE_HEADERS else self.text(v) for k, v in headers.items()
        }


def secrets_in(model: BaseModel) -> list[str]:
    """Every ``SecretStr`` value inside a settings model, nested models included."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            found.extend(secrets_in(value))
        elif isinstance(value, Mapping):
            found.extend(
                s for v in value.values() if isinstance(v, BaseModel) for s in secrets_in(v)
            )
    return found
