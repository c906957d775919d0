"""The read state machine: keyset windows over search, tie mode, safe resume points."""

from __future__ import annotations

from clm_hub_plugins.hubspot.cursor import ReadState, StreamToken, advance, decode_token

SEARCH = ReadState(mode="search", upper_ms=10_000, lower_ms=1_000)


def test_next_window_starts_at_the_last_timestamp_of_the_page() -> None:
    state, more = advance(SEARCH, [(1_000, 5), (1_500, 2), (2_000, 9)], next_after="3")
    assert more
    assert (state.lower_ms, state.lower_inclusive, state.tie) == (2_000, True, False)
    assert state.progress_ms == 2_000


def test_a_full_page_at_the_lower_bound_switches_to_tie_mode() -> None:
    state, more = advance(SEARCH, [(1_000, 7), (1_000, 3)], next_after="2")
    assert more and state.tie and state.tie_after_id == 0


def test_tie_mode_pages_by_id_then_continues_strictly_after_the_timestamp() -> None:
    tie = SEARCH.model_copy(update={"tie": True})
    state, more = advance(tie, [(1_000, 3), (1_000, 7)], next_after="2")
    assert more and state.tie_after_id == 7
    state, more = advance(state, [(1_000, 9)], next_after=None)
    assert more and not state.tie and not state.lower_inclusive and state.lower_ms == 1_000


def test_search_ends_when_hubspot_offers_no_next_page() -> None:
    state, more = advance(SEARCH, [(4_000, 1)], next_after=None)
    assert not more and state.final_ms() == 4_000


def test_a_list_scan_never_resumes_after_its_start() -> None:
    scan = ReadState(mode="list", upper_ms=5_000)
    state, more = advance(scan, [(9_000, 1), (2_000, 2)], next_after="Mg")
    assert more and state.progress_ms is None
    state, more = advance(state, [], next_after=None)
    assert not more and state.final_ms() == 5_000  # a record changed mid-scan: re-read it


def test_token_round_trips_and_a_foreign_one_is_ignored() -> None:
    token = StreamToken(source="contacts", state=SEARCH)
    assert decode_token(token.encode()) == token
    assert decode_token("c2") is None
