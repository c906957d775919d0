"""SIGTERM in the middle of a push: nothing lost, and the next start pushes nothing twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from clm_hub.linking import push_t
from clm_hub.sandbox import serve
from clm_hub.store import open_engine
from tests.daemon import hookbox
from tests.daemon.conftest import Daemon, migrate, wait_for, write_config

PEOPLE = 100


@pytest.fixture
def tool() -> Iterator[tuple[hookbox.HookboxState, str]]:
    state = hookbox.HookboxState()
    for i in range(PEOPLE):
        state.add(f"h{i:03d}", f"p{i}@example.com")
    with serve(hookbox.create_app(state)) as url:
        yield state, url


def pushed_tags(database_url: str) -> dict[str, list[str]]:
    """What the hub recorded as landed in the tool, per record."""
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(push_t.c.external_id, push_t.c.tags).where(
                    push_t.c.connector == "box", push_t.c.pushed_at.is_not(None)
                )
            ).all()
    finally:
        engine.dispose()
    return {external_id: sorted(tags) for external_id, tags in rows}


def test_sigterm_mid_push_loses_nothing_and_the_next_start_pushes_nothing_twice(
    tmp_path: Path,
    sqlite_url: str,
    daemons: Callable[..., Daemon],
    tool: tuple[hookbox.HookboxState, str],
) -> None:
    state, url = tool
    config = write_config(
        tmp_path, sqlite_url,
        f'[connectors.box]\nplugin = "hookbox"\nbase_url = "{url}"\napi_key = "key-0123456789"\n'
        # at most 5 API calls a second: ten batches of ten take two seconds
        'limit = 1\nwindow = 0.2\nschedule = { interval = "1h", jitter = "0s" }\n',
        hookbox=True,
    )  # fmt: skip
    migrate(sqlite_url)

    # The first cycle pulls everyone, gives them a stage and pushes 10 batches of tags.
    first = daemons(config, name="first").start()
    wait_for(lambda: state.write_calls >= 3, what="the push to be under way")
    code, seconds = first.stop()
    assert code == 0
    assert seconds < 5
    assert first.events("cycle.abandoned", connector="box", reason="shutdown")

    landed = {cid for cid in state.contacts if state.owned_tags(cid)}
    assert 0 < len(landed) < PEOPLE  # it really stopped mid-push
    recorded = pushed_tags(sqlite_url)
    assert set(recorded) == landed  # every batch the tool applied is recorded, no other
    assert all(recorded[cid] == state.owned_tags(cid) for cid in landed)

    second = daemons(config, name="second").start()
    wait_for(lambda: all(state.owned_tags(cid) for cid in state.contacts), what="the rest pushed")
    assert second.stop()[0] == 0
    assert set(state.applied.values()) == {1}  # each record was written exactly once
    assert len(state.applied) == PEOPLE
    assert set(pushed_tags(sqlite_url)) == set(state.contacts)
    assert "0123456789" not in first.text() + second.text()
