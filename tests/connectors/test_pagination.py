"""Pagination follows tokens and refuses to loop."""

from __future__ import annotations

import pytest

from clm_hub.connectors.pagination import Fetched, paginate
from clm_hub.errors import PaginationLoopError


async def test_follows_tokens_to_the_end() -> None:
    pages = {None: (["a", "b"], "t1"), "t1": (["c"], "t2"), "t2": (["d"], None)}

    async def fetch(token: str | None) -> Fetched[list[str], str]:
        items, nxt = pages[token]
        return Fetched(items, nxt)

    seen = [p async for p in paginate(fetch, connector="acme")]
    assert [p.items for p in seen] == [["a", "b"], ["c"], ["d"]]
    assert [p.next_token for p in seen] == ["t1", "t2", None]


async def test_a_repeated_token_stops_with_an_error() -> None:
    pages = {None: ([1], "t1"), "t1": ([2], "t2"), "t2": ([3], "t1")}

    async def fetch(token: str | None) -> Fetched[list[int], str]:
        items, nxt = pages[token]
        return Fetched(items, nxt)

    collected: list[int] = []
    with pytest.raises(PaginationLoopError, match="came back a second time"):
        async for page in paginate(fetch, connector="acme"):
            collected.extend(page.items)
    assert collected == [1, 2, 3]


async def test_resumes_from_a_start_token() -> None:
    async def fetch(token: int | None) -> Fetched[list[int], int]:
        assert token is not None
        return Fetched([token], token + 1 if token < 3 else None)

    seen = [p.items[0] async for p in paginate(fetch, connector="acme", start=2)]
    assert seen == [2, 3]
