"""Pagination helpers that cannot loop forever.

Tools page by opaque cursor, by next link or by offset; all reduce to "fetch the page for
this token, get items and the next token". ``paginate`` follows the tokens and raises
``PaginationLoopError`` the moment a token repeats (a known failure mode of several APIs
under concurrent writes), instead of re-reading the same pages until the run times out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from clm_hub.errors import PaginationLoopError

__all__ = ["Fetched", "paginate"]

T = TypeVar("T")
TokenT = TypeVar("TokenT", bound=Hashable)


@dataclass(frozen=True)
class Fetched(Generic[T, TokenT]):
    """One fetched page: its items and the token of the next page (``None`` at the end)."""

    items: T
    next_token: TokenT | None


async def paginate(
    fetch: Callable[[TokenT | None], Awaitable[Fetched[T, TokenT]]],
    *,
    connector: str,
    start: TokenT | None = None,
    max_pages: int | None = None,
) -> AsyncIterator[Fetched[T, TokenT]]:
    """Yield every page from ``start`` on; each page carries the token that follows it.

    Yielding the next token with the page lets the caller store it as the resume point in
    the same transaction as the page's records.
    """
    seen: set[TokenT] = set() if start is None else {start}
    token = start
    pages = 0
    while True:
        page = await fetch(token)
        pages += 1
        yield page
        token = page.next_token
        if token is None or (max_pages is not None and pages >= max_pages):
            return
        if token in seen:
            raise PaginationLoopError(
                connector, f"page token {str(token)[:40]!r} came back a second time; stopping"
            )
        seen.add(token)
