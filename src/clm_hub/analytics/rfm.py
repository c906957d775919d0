"""RFM scores (1-5) with tie-safe quintiles, and named segments from TOML maps.

Scoring convention (:data:`SCORING_CONVENTION`, "min-rank-quintile"): for a value x among n
reference values, ``score = 1 + floor(5 * (number of values strictly below x) / n)``, or "strictly
above" when lower is better (recency as time since the last purchase). Equal values therefore
always get equal scores, whatever their row order: the usual ``rank(method="first")`` +
quintile trick splits identical customers, and on CDNOW about 60% of customers share the same
frequency. The price is that score groups are not exactly 20% each when there are ties; with
heavy ties some scores are simply empty.

The same scores come from four stored cut points (:class:`Thresholds`), so one changed customer
can be rescored against yesterday's cuts without re-ranking everyone: ``score = 1 + #{cuts < x}``
with cut_k the ceil(k n / 5)-th smallest reference value (k = 1..4).

Segment maps are TOML data in ``presets/`` (see ``rf_grid.toml`` for the format): either an
``exact-cover`` grid where every cell is owned by exactly one segment, or a ``first-match`` list
evaluated in order with an explicit fallback. Maps on the R x FM axes use
``FM = floor((F + M + 1) / 2)``, the mean of F and M with halves rounded up (so F3/M4 -> 4).
"""

from __future__ import annotations

import importlib.resources
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

SCORE_LEVELS: Final = 5
_SCORES: Final = range(1, SCORE_LEVELS + 1)


class ScoringConvention(StrEnum):
    """How raw values become 1-5 scores; stored with thresholds so old scores stay explainable."""

    MIN_RANK_QUINTILE = "min-rank-quintile"


SCORING_CONVENTION: Final = ScoringConvention.MIN_RANK_QUINTILE
CONVENTION_DESCRIPTIONS: Final[Mapping[ScoringConvention, str]] = {
    ScoringConvention.MIN_RANK_QUINTILE: (
        "score = 1 + floor(5 * (number of reference values strictly below x) / n) "
        "('strictly above' when lower is better); tied values always share a score"
    ),
}


@dataclass(frozen=True)
class Thresholds:
    """Four cut points in the raw unit; ``score = 1 + #{k : x beyond cut_k}``.

    "Beyond" is ``x > cut`` when higher is better and ``x < cut`` otherwise. For the reference
    values this equals the rank formula; a new value outside the reference range scores 1 or 5
    (the formula would give 6 to a value above all n, so it is capped). Store them with
    :meth:`to_dict` and rescore one customer later without re-ranking everyone.
    """

    cuts: tuple[float, float, float, float]
    higher_is_better: bool
    n_reference: int
    convention: ScoringConvention = SCORING_CONVENTION

    def explain(self) -> str:
        """One line for ``--explain`` output."""
        op = ">" if self.higher_is_better else "<"
        cuts = ", ".join(f"{c:g}" for c in self.cuts)
        return (
            f"{self.convention.value} over {self.n_reference} values: score = 1 + number of "
            f"cuts [{cuts}] with x {op} cut ({CONVENTION_DESCRIPTIONS[self.convention]})"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for storage."""
        return {
            "cuts": list(self.cuts),
            "higher_is_better": self.higher_is_better,
            "n_reference": self.n_reference,
            "convention": self.convention.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Thresholds:
        """Inverse of :meth:`to_dict`; rejects unknown conventions and malformed cuts."""
        cuts = data.get("cuts")
        if not isinstance(cuts, list | tuple) or len(cuts) != SCORE_LEVELS - 1:
            raise ValueError(f"thresholds need {SCORE_LEVELS - 1} cuts, got {cuts!r}")
        values = [float(c) for c in cuts]
        n_reference = data.get("n_reference")
        if not isinstance(n_reference, int) or n_reference < 1:
            raise ValueError(f"n_reference must be a positive integer, got {n_reference!r}")
        return cls(
            cuts=(values[0], values[1], values[2], values[3]),
            higher_is_better=bool(data.get("higher_is_better")),
            n_reference=n_reference,
            convention=ScoringConvention(str(data.get("convention"))),
        )


def _finite_1d(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def compute_thresholds(values: ArrayLike, *, higher_is_better: bool = True) -> Thresholds:
    """Cut points reproducing the min-rank-quintile scores of ``values``."""
    arr = _finite_1d(values, "values")
    if arr.size == 0:
        raise ValueError("cannot compute RFM thresholds from no values")
    ordered = np.sort(arr)
    return thresholds_from_ranks(
        lambda i: float(ordered[i]), arr.size, higher_is_better=higher_is_better
    )


def thresholds_from_ranks(
    kth: Callable[[int], float], n: int, *, higher_is_better: bool = True
) -> Thresholds:
    """:func:`compute_thresholds` from order statistics: ``kth(i)`` is the i-th smallest of
    the ``n`` values (from 0), so a distribution kept as value counts needs no value array."""
    if n < 1:
        raise ValueError("cannot compute RFM thresholds from no values")
    # The ceil(k n / 5)-th smallest with "better" oriented larger: when lower is better, that
    # is the same rank counted from the top.
    positions = [(k * n + SCORE_LEVELS - 1) // SCORE_LEVELS - 1 for k in range(1, SCORE_LEVELS)]
    if not higher_is_better:
        positions = [n - 1 - i for i in positions]
    cuts = [kth(i) + 0.0 for i in positions]  # + 0.0 turns -0.0 into 0.0
    return Thresholds(
        cuts=(cuts[0], cuts[1], cuts[2], cuts[3]),
        higher_is_better=higher_is_better,
        n_reference=n,
    )


def score_array(values: ArrayLike, thresholds: Thresholds) -> NDArray[np.int8]:
    """Vectorised :func:`score`."""
    arr = _finite_1d(np.atleast_1d(np.asarray(values, dtype=np.float64)), "values")
    cuts = np.asarray(thresholds.cuts, dtype=np.float64)
    column = arr[:, np.newaxis]
    beyond = column > cuts if thresholds.higher_is_better else column < cuts
    return np.asarray(1 + np.count_nonzero(beyond, axis=1), dtype=np.int8)


def score(value: float, thresholds: Thresholds) -> int:
    """Score one value against stored thresholds (incremental rescoring of one customer)."""
    return int(score_array([value], thresholds)[0])


@dataclass(frozen=True)
class RfmThresholds:
    """The thresholds behind one scoring run, to store and reuse for incremental scoring."""

    recency: Thresholds
    frequency: Thresholds
    monetary: Thresholds


@dataclass(frozen=True, eq=False)
class RfmScores:
    """Scores 1-5 per customer (input order) and the thresholds that produced them."""

    r: NDArray[np.int8]
    f: NDArray[np.int8]
    m: NDArray[np.int8]
    thresholds: RfmThresholds


def score_rfm(recency: ArrayLike, frequency: ArrayLike, monetary: ArrayLike) -> RfmScores:
    """Score a customer base. ``recency`` is time since the last purchase (smaller is better)."""
    thresholds = RfmThresholds(
        recency=compute_thresholds(recency, higher_is_better=False),
        frequency=compute_thresholds(frequency),
        monetary=compute_thresholds(monetary),
    )
    return RfmScores(
        r=score_array(recency, thresholds.recency),
        f=score_array(frequency, thresholds.frequency),
        m=score_array(monetary, thresholds.monetary),
        thresholds=thresholds,
    )


def fm_score(f: int, m: int) -> int:
    """Mean of F and M with halves rounded up (Python's ``round`` would send 2.5 down, 3.5 up)."""
    return (f + m + 1) // 2


def slugify(name: str) -> str:
    """Tag-safe slug: ``"Can't Lose Them"`` -> ``"cant-lose-them"``."""
    without_apostrophes = re.sub(r"['\u2019]", "", name.lower())
    return re.sub(r"[^a-z0-9]+", "-", without_apostrophes).strip("-")


# --- segment maps -------------------------------------------------------------------------

PRESETS_PACKAGE: Final = "clm_hub.analytics"
DEFAULT_SEGMENT_MAP: Final = "rf_grid"


class SegmentMapError(ValueError):
    """A segment map file is malformed; the message starts with the file it came from."""


def _parse_range(value: object) -> tuple[int, int]:
    """TOML ``3`` or ``[2, 4]`` -> inclusive (low, high), with one readable error message."""
    items = list(value) if isinstance(value, list | tuple) else [value, value]
    ints = [v for v in items if type(v) is int]  # bool is an int subclass: reject it too
    if len(items) != 2 or len(ints) != 2:
        raise ValueError(
            f"must be a score or [low, high] of scores 1-{SCORE_LEVELS}, got {value!r}"
        )
    lo, hi = ints
    if not 1 <= lo <= hi <= SCORE_LEVELS:
        raise ValueError(f"range {value!r} must satisfy 1 <= low <= high <= {SCORE_LEVELS}")
    return lo, hi


ScoreRange = Annotated[tuple[int, int], BeforeValidator(_parse_range)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    r: ScoreRange
    f: ScoreRange | None = None
    fm: ScoreRange | None = None


class _Split(_Rule):
    of: str
    enabled: bool = False


class _MapFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    axes: Literal["r-f", "r-fm"]
    evaluation: Literal["exact-cover", "first-match"]
    fallback: str | None = None
    segments: list[_Rule] = Field(min_length=1)
    splits: list[_Split] = Field(default_factory=list)


Cell = tuple[int, int]


@dataclass(frozen=True)
class SegmentMap:
    """A validated segment map resolved to a 5 x 5 table (rows R 1-5, columns F or FM 1-5)."""

    name: str
    description: str
    source: str
    axes: Literal["r-f", "r-fm"]
    evaluation: Literal["exact-cover", "first-match"]
    fallback: str | None
    table: tuple[tuple[str, ...], ...]
    enabled_splits: tuple[str, ...]

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Every name the map can return, in table order (fallback included if reachable)."""
        seen = dict.fromkeys(name for row in self.table for name in row)
        return tuple(seen)

    @property
    def slugs(self) -> dict[str, str]:
        return {name: slugify(name) for name in self.segment_names}

    def _column(self, f: int, m: int | None) -> int:
        if self.axes == "r-f":
            return f
        if m is None:
            raise ValueError(f"segment map {self.name!r} uses R x FM and needs the M score")
        _check_score(m, "M")
        return fm_score(f, m)

    def segment_for(self, r: int, f: int, m: int | None = None) -> str:
        """Segment of one customer; ``m`` is required only for R x FM maps."""
        _check_score(r, "R")
        _check_score(f, "F")
        return self.table[r - 1][self._column(f, m) - 1]

    def segments_for(
        self, r: ArrayLike, f: ArrayLike, m: ArrayLike | None = None
    ) -> NDArray[np.str_]:
        """Vectorised :meth:`segment_for`."""
        r_arr, f_arr = _score_array(r, "R"), _score_array(f, "F")
        if self.axes == "r-f":
            col = f_arr
        elif m is None:
            raise ValueError(f"segment map {self.name!r} uses R x FM and needs the M scores")
        else:
            col = (f_arr + _score_array(m, "M") + 1) // 2
        return np.asarray(self.table, dtype=np.str_)[r_arr - 1, col - 1]

    def explain(self) -> str:
        """The resolved grid as text, best R on top, for ``--explain``."""
        column = "F" if self.axes == "r-f" else "FM"
        width = max(len(name) for name in self.segment_names)
        header = " " * 5 + " ".join(f"{column}{c}".ljust(width) for c in _SCORES)
        rows = [
            f"R{r}   " + " ".join(name.ljust(width) for name in self.table[r - 1])
            for r in reversed(_SCORES)
        ]
        return "\n".join([f"{self.name} ({self.evaluation}, {self.source})", header, *rows])


def _check_score(value: int, what: str) -> None:
    if value not in _SCORES:
        raise ValueError(f"{what} score must be an integer 1-{SCORE_LEVELS}, got {value!r}")


def _score_array(values: ArrayLike, what: str) -> NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu" or np.any(arr < 1) or np.any(arr > SCORE_LEVELS):
        raise ValueError(f"{what} scores must be integers 1-{SCORE_LEVELS}")
    return arr.astype(np.int64)


def _cells(rule: _Rule, axes: str) -> set[Cell]:
    column = rule.f if axes == "r-f" else rule.fm
    if column is None:
        return set()
    return {
        (r, c) for r in range(rule.r[0], rule.r[1] + 1) for c in range(column[0], column[1] + 1)
    }


def _cell_label(cell: Cell, col_key: str) -> str:
    return f"R{cell[0]}/{col_key.upper()}{cell[1]}"


def _check_rules(spec: _MapFile) -> str:
    """Structural checks beyond the schema; returns the column key ("f" or "fm")."""
    col_key, other_key = ("f", "fm") if spec.axes == "r-f" else ("fm", "f")
    for rule in [*spec.segments, *spec.splits]:
        if getattr(rule, col_key) is None or getattr(rule, other_key) is not None:
            raise ValueError(f"{rule.name!r}: axes are {spec.axes}, so give r and {col_key} only")
    names = [rule.name for rule in spec.segments] + [s.name for s in spec.splits]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"segment names used twice: {duplicates}")
    if spec.fallback is not None:
        names.append(spec.fallback)
    slugs = [slugify(n) for n in dict.fromkeys(names)]
    if len(set(slugs)) != len(slugs) or "" in slugs:
        raise ValueError(f"segment names must have distinct, non-empty slugs: {slugs}")
    return col_key


def _fill_table(spec: _MapFile, col_key: str) -> dict[Cell, str]:
    table: dict[Cell, str] = {}
    for rule in spec.segments:
        cells = _cells(rule, spec.axes)
        overlap = sorted(cell for cell in cells if cell in table)
        if overlap and spec.evaluation == "exact-cover":
            raise ValueError(
                f"cell {_cell_label(overlap[0], col_key)} is covered twice ({table[overlap[0]]!r} "
                f"and {rule.name!r}); exact-cover maps need each cell exactly once"
            )
        free = cells - table.keys()
        if not free:
            raise ValueError(f"{rule.name!r} is unreachable: earlier segments take all its cells")
        table.update(dict.fromkeys(free, rule.name))

    missing = sorted({(r, c) for r in _SCORES for c in _SCORES} - table.keys())
    if spec.evaluation == "exact-cover":
        if spec.fallback is not None:
            raise ValueError("exact-cover maps cover every cell and take no fallback")
        if missing:
            shown = ", ".join(_cell_label(cell, col_key) for cell in missing)
            raise ValueError(f"cells not covered by any segment: {shown}")
    elif spec.fallback is None:
        raise ValueError("first-match maps need a fallback segment for uncovered cells")
    else:
        table.update(dict.fromkeys(missing, spec.fallback))
    return table


def _apply_splits(
    spec: _MapFile, table: dict[Cell, str], overrides: Mapping[str, bool], col_key: str
) -> list[str]:
    """Validate every split (enabled or not) and carve the enabled ones out of their parents."""
    defined = [split.name for split in spec.splits]
    unknown = sorted(set(overrides) - set(defined))
    if unknown:
        raise ValueError(f"unknown splits {unknown}; the file defines {defined}")
    taken: set[Cell] = set()
    enabled: list[str] = []
    for split in spec.splits:
        if split.of not in table.values():
            raise ValueError(f"split {split.name!r} is of unknown segment {split.of!r}")
        cells = _cells(split, spec.axes)
        outside = sorted(cell for cell in cells if table[cell] != split.of)
        if outside:
            raise ValueError(
                f"split {split.name!r} must lie inside {split.of!r}, but "
                f"{_cell_label(outside[0], col_key)} belongs to {table[outside[0]]!r}"
            )
        if cells & taken:
            raise ValueError(f"split {split.name!r} overlaps another split")
        taken |= cells
        if overrides.get(split.name, split.enabled):
            enabled.append(split.name)
            table.update(dict.fromkeys(cells, split.name))
    return enabled


def available_presets() -> list[str]:
    """Names of the segment maps shipped in ``clm_hub/analytics/presets``."""
    folder = importlib.resources.files(PRESETS_PACKAGE) / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_segment_map(
    name_or_path: str | os.PathLike[str] = DEFAULT_SEGMENT_MAP,
    *,
    splits: Mapping[str, bool] | None = None,
) -> SegmentMap:
    """Load and validate a preset (by name, e.g. ``"rf_grid"``) or a TOML file (by path).

    ``splits`` switches optional splits on or off over the file's own ``enabled`` (e.g.
    ``{"Lost": True}`` carves R1/F1 out of Hibernating in ``rf_grid``). Any problem - TOML syntax,
    unknown keys, a cell covered twice or not at all, an unreachable segment - raises
    :class:`SegmentMapError` whose message starts with the file.
    """
    text, source = _read_map(name_or_path)
    try:
        spec = _MapFile.model_validate(tomllib.loads(text))
        col_key = _check_rules(spec)
        table = _fill_table(spec, col_key)
        enabled = _apply_splits(spec, table, splits or {}, col_key)
    except tomllib.TOMLDecodeError as exc:
        raise SegmentMapError(f"{source}: invalid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SegmentMapError(f"{source}: {problems}") from exc
    except ValueError as exc:
        raise SegmentMapError(f"{source}: {exc}") from exc
    return SegmentMap(
        name=spec.name,
        description=spec.description,
        source=source,
        axes=spec.axes,
        evaluation=spec.evaluation,
        fallback=spec.fallback,
        table=tuple(tuple(table[(r, c)] for c in _SCORES) for r in _SCORES),
        enabled_splits=tuple(enabled),
    )


def _read_map(name_or_path: str | os.PathLike[str]) -> tuple[str, str]:
    raw = os.fspath(name_or_path)
    is_path = raw.endswith(".toml") or os.sep in raw or "/" in raw
    if isinstance(name_or_path, os.PathLike) or is_path:
        path = Path(raw)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise SegmentMapError(f"{path}: cannot read segment map: {exc}") from exc
    if raw not in available_presets():
        raise SegmentMapError(
            f"{raw}: no such segment map preset (available: {', '.join(available_presets())})"
        )
    resource = importlib.resources.files(PRESETS_PACKAGE) / "presets" / f"{raw}.toml"
    return resource.read_text(encoding="utf-8"), str(resource)
