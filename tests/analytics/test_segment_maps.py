"""Segment maps: TOML presets, validation, and lookups."""

from __future__ import annotations

import importlib.resources
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from clm_hub.analytics.rfm import (
    SegmentMapError,
    available_presets,
    fm_score,
    load_segment_map,
    slugify,
)

RF_GRID_EXPECTED = {  # rows R5..R1, columns F1..F5, as specified for the default map
    5: ["New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Loyal"],
    3: ["About To Sleep", "About To Sleep", "Need Attention", "Loyal", "Loyal"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    1: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
}

GRID_HEADER = 'name = "t"\naxes = "r-f"\nevaluation = "exact-cover"\n'


def _preset_text(name: str) -> str:
    resource = importlib.resources.files("clm_hub.analytics") / "presets" / f"{name}.toml"
    return resource.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str, name: str = "map.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _segment(name: str, r: str, col: str, key: str = "f") -> str:
    return f'[[segments]]\nname = "{name}"\nr = {r}\n{key} = {col}\n'


def test_every_preset_loads() -> None:
    assert {"rf_grid", "rfm_ranges"} <= set(available_presets())
    for name in available_presets():
        segment_map = load_segment_map(name)
        assert segment_map.name == name
        assert len(segment_map.table) == 5 and all(len(row) == 5 for row in segment_map.table)


def test_default_grid_file_covers_each_of_the_25_cells_exactly_once() -> None:
    spec = tomllib.loads(_preset_text("rf_grid"))
    counts: Counter[tuple[int, int]] = Counter()
    for segment in spec["segments"]:
        r = segment["r"] if isinstance(segment["r"], list) else [segment["r"]] * 2
        f = segment["f"] if isinstance(segment["f"], list) else [segment["f"]] * 2
        counts.update((ri, fi) for ri in range(r[0], r[1] + 1) for fi in range(f[0], f[1] + 1))
    assert sorted(counts) == [(r, f) for r in range(1, 6) for f in range(1, 6)]
    assert set(counts.values()) == {1}


def test_default_grid_assigns_the_specified_segment_to_every_cell() -> None:
    grid = load_segment_map()
    for r, row in RF_GRID_EXPECTED.items():
        assert [grid.segment_for(r, f) for f in range(1, 6)] == row


def test_default_grid_ignores_the_monetary_score() -> None:
    grid = load_segment_map("rf_grid")
    assert {grid.segment_for(5, 5, m) for m in range(1, 6)} == {"Champions"}


def test_lost_split_is_off_by_default() -> None:
    grid = load_segment_map("rf_grid")
    assert grid.segment_for(1, 1) == "Hibernating"
    assert "Lost" not in grid.segment_names and grid.enabled_splits == ()


def test_lost_split_takes_r1_f1_from_hibernating_when_switched_on() -> None:
    grid = load_segment_map("rf_grid", splits={"Lost": True})
    assert grid.segment_for(1, 1) == "Lost"
    assert [grid.segment_for(1, 2), grid.segment_for(2, 1)] == ["Hibernating", "Hibernating"]
    assert grid.enabled_splits == ("Lost",)


def test_unknown_split_name_is_rejected() -> None:
    with pytest.raises(SegmentMapError, match="unknown splits"):
        load_segment_map("rf_grid", splits={"Dormant": True})


def test_grid_with_a_gap_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GRID_HEADER + _segment("A", "[1, 5]", "[1, 4]"), "gap.toml")
    with pytest.raises(SegmentMapError, match=r"gap\.toml.*not covered.*R1/F5"):
        load_segment_map(path)


def test_grid_with_an_overlap_is_rejected_naming_the_file(tmp_path: Path) -> None:
    text = GRID_HEADER + _segment("A", "[1, 5]", "[1, 5]") + _segment("B", "5", "5")
    path = _write(tmp_path, text, "overlap.toml")
    with pytest.raises(SegmentMapError, match=r"overlap\.toml.*R5/F5 is covered twice"):
        load_segment_map(path)


def test_unknown_key_is_rejected_naming_the_file(tmp_path: Path) -> None:
    text = GRID_HEADER + _segment("A", "[1, 5]", "[1, 5]") + "colour = 'red'\n"
    path = _write(tmp_path, text, "typo.toml")
    with pytest.raises(SegmentMapError, match=r"typo\.toml.*colour"):
        load_segment_map(path)


def test_invalid_toml_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "name = \n", "broken.toml")
    with pytest.raises(SegmentMapError, match=r"broken\.toml.*invalid TOML"):
        load_segment_map(path)


def test_score_outside_1_to_5_in_a_map_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, GRID_HEADER + _segment("A", "[0, 5]", "[1, 5]"))
    with pytest.raises(SegmentMapError, match=r"map\.toml"):
        load_segment_map(path)


def test_first_match_segment_hidden_by_earlier_ones_is_rejected(tmp_path: Path) -> None:
    text = (
        'name = "t"\naxes = "r-fm"\nevaluation = "first-match"\nfallback = "Other"\n'
        + _segment("Big", "[1, 5]", "[1, 5]", "fm")
        + _segment("Hidden", "5", "5", "fm")
    )
    with pytest.raises(SegmentMapError, match="'Hidden' is unreachable"):
        load_segment_map(_write(tmp_path, text))


def test_range_preset_fallback_is_used_for_uncovered_cells(tmp_path: Path) -> None:
    # The shipped ranges leave no cell over; drop "At Risk" to uncover R1/FM3.
    blocks = _preset_text("rfm_ranges").split("[[segments]]")
    kept = [block for block in blocks if 'name = "At Risk"' not in block]
    assert len(kept) == len(blocks) - 1
    ranges = load_segment_map(_write(tmp_path, "[[segments]]".join(kept)))
    assert ranges.fallback == "Need Attention"
    assert ranges.segment_for(1, 3, 3) == "Need Attention"
    assert load_segment_map("rfm_ranges").segment_for(1, 3, 3) == "At Risk"


def test_range_preset_reaches_all_eleven_segments() -> None:
    ranges = load_segment_map("rfm_ranges")
    assert set(ranges.segment_names) == {
        "Champions",
        "Loyal",
        "Potential Loyalist",
        "New",
        "Promising",
        "Need Attention",
        "About To Sleep",
        "At Risk",
        "Can't Lose Them",
        "Hibernating",
        "Lost",
    }


def test_range_preset_evaluates_first_match_in_file_order() -> None:
    ranges = load_segment_map("rfm_ranges")
    # R5/FM5 matches Champions and Loyal; Champions comes first.
    assert ranges.segment_for(5, 5, 5) == "Champions"
    # R4/FM1 matches New, Promising and Potential Loyalist; New comes first.
    assert ranges.segment_for(4, 1, 1) == "New"


def test_fm_is_the_mean_of_f_and_m_with_halves_rounded_up() -> None:
    assert [fm_score(3, 4), fm_score(4, 3), fm_score(2, 3), fm_score(1, 2)] == [4, 4, 3, 2]
    ranges = load_segment_map("rfm_ranges")
    assert ranges.segment_for(1, 3, 4) == "Can't Lose Them"  # FM 3.5 -> 4
    assert ranges.segment_for(1, 2, 3) == "At Risk"  # FM 2.5 -> 3


def test_range_preset_needs_the_monetary_score() -> None:
    with pytest.raises(ValueError, match="needs the M score"):
        load_segment_map("rfm_ranges").segment_for(3, 3)


def test_vectorised_lookup_agrees_with_single_lookups() -> None:
    ranges = load_segment_map("rfm_ranges")
    cells = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    r, f, m = (np.array(axis) for axis in zip(*cells, strict=True))
    assert ranges.segments_for(r, f, m).tolist() == [ranges.segment_for(*c) for c in cells]


def test_segment_slugs_are_tag_safe() -> None:
    assert slugify("Can't Lose Them") == "cant-lose-them"
    assert slugify("About To Sleep") == "about-to-sleep"
    assert load_segment_map().slugs["Can't Lose Them"] == "cant-lose-them"


def test_out_of_range_score_lookup_is_rejected() -> None:
    with pytest.raises(ValueError, match="R score"):
        load_segment_map().segment_for(0, 3)


def test_unknown_preset_name_lists_the_available_ones() -> None:
    with pytest.raises(SegmentMapError, match=r"available: .*rf_grid"):
        load_segment_map("no_such_map")


def test_explain_prints_the_resolved_grid() -> None:
    text = load_segment_map().explain()
    assert "rf_grid" in text and "Can't Lose Them" in text and text.count("\n") == 6
