"""Stage rules as TOML data: the money, windows, model, RFM and calibration settings, and the
ordered stage rules. ``default_rules.toml`` (package data) documents every key.

Everything here is validation only: no database, no clock. :func:`load_rules` turns a file into a
frozen :class:`StageRules`; its :attr:`~StageRules.fingerprint` identifies the rules a stored
state was computed with, so a changed file forces a full recompute instead of mixing two rule sets.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from clm_hub.analytics.bg_nbd import TimeUnit
from clm_hub.analytics.rfm import SegmentMap, SegmentMapError, load_segment_map
from clm_hub.errors import ConfigError
from clm_hub.settings import format_validation_error

__all__ = [
    "DEFAULT_RULES",
    "NPS_CLASSES",
    "CalibrationConfig",
    "DayCount",
    "ModelConfig",
    "MoneyConfig",
    "RfmConfig",
    "RuleSpec",
    "StageRules",
    "TimeSpan",
    "WindowRef",
    "WindowsConfig",
    "load_rules",
    "load_segment_map_for",
]

DEFAULT_RULES: Final = "default_rules.toml"
NPS_CLASSES: Final = ("promoter", "passive", "detractor")
WINDOW_NAMES: Final = ("cycle", "at_risk", "lapsed")
NpsClass = Literal["promoter", "passive", "detractor"]

_AMOUNT = r"(\d+(?:\.\d+)?)"
_SPAN = re.compile(rf"^\s*{_AMOUNT}\s*(day|days|week|weeks)\s*$")
_WINDOW = re.compile(rf"^\s*{_AMOUNT}\s*(day|days|cycle|cycles)\s*$")


@dataclass(frozen=True)
class TimeSpan:
    """A length of time in days or weeks, written ``"7 days"`` or ``"52 weeks"`` in TOML."""

    amount: float
    unit: TimeUnit

    @property
    def days(self) -> float:
        return self.amount * (7.0 if self.unit == "weeks" else 1.0)

    def __str__(self) -> str:
        return f"{self.amount:g} {self.unit}"


def _parse_span(value: object) -> object:
    if isinstance(value, str):
        match = _SPAN.match(value)
        if not match:
            raise ValueError(f"expected e.g. '7 days' or '52 weeks', got {value!r}")
        amount = float(match.group(1))
        if amount <= 0:
            raise ValueError("must be positive")
        unit: TimeUnit = "weeks" if match.group(2).startswith("week") else "days"
        return TimeSpan(amount, unit)
    return value


@dataclass(frozen=True)
class WindowRef:
    """A number of days given directly, in shop cycles, or by naming a window."""

    kind: Literal["days", "cycles", "named"]
    amount: float = 0.0
    name: str = ""

    def __str__(self) -> str:
        if self.kind == "named":
            return self.name
        unit = "days" if self.kind == "days" else "cycles"
        return f"{self.amount:g} {unit}"


def _parse_window(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a window, not a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a window cannot be negative")
        return WindowRef("days", float(value))
    if isinstance(value, str):
        if value in WINDOW_NAMES:
            return WindowRef("named", name=value)
        match = _WINDOW.match(value)
        if not match:
            raise ValueError(
                f"expected 'lapsed', 'at_risk', 'cycle', 'N days', 'N cycles' or a number of "
                f"days, got {value!r}"
            )
        kind: Literal["days", "cycles"] = "days" if match.group(2).startswith("day") else "cycles"
        return WindowRef(kind, float(match.group(1)))
    return value


def _parse_day_count(value: object) -> object:
    """Windows of the ``[windows]`` table: "N days" or "N cycles" only (they define the names)."""
    parsed = _parse_window(value)
    if isinstance(parsed, WindowRef) and parsed.kind == "named":
        raise ValueError("give 'N days' or 'N cycles' here, not a window name")
    return parsed


def _auto_or_days(value: object) -> object:
    """The shop cycle: "auto" or a number of days (not cycles: it defines them)."""
    if value == "auto":
        return value
    parsed = _parse_day_count(value)
    if isinstance(parsed, WindowRef) and (parsed.kind != "days" or parsed.amount <= 0):
        raise ValueError("the cycle is 'auto' or a positive 'N days'")
    return parsed


Span = Annotated[TimeSpan, BeforeValidator(_parse_span)]
Window = Annotated[WindowRef, BeforeValidator(_parse_window)]
DayCount = Annotated[WindowRef, BeforeValidator(_parse_day_count)]
Score = Annotated[int, Field(ge=1, le=5)]
_STAGE = r"^[a-z][a-z0-9-]{0,31}$"


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class MoneyConfig(_Table):
    """Which currency features are computed in, and fixed rates for others."""

    currency: Annotated[str, Field(pattern=r"^([A-Z]{3}|auto)$")] = "auto"
    rates: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Annotated[float, Field(gt=0)]] = (
        Field(default_factory=dict)
    )


class WindowsConfig(_Table):
    """The shop cycle and the at-risk and lapsed windows derived from it."""

    cycle: Annotated[WindowRef | Literal["auto"], BeforeValidator(_auto_or_days)] = "auto"
    cycle_min_customers: Annotated[int, Field(ge=1)] = 20
    cycle_fallback: DayCount = WindowRef("days", 30.0)
    at_risk: DayCount = WindowRef("cycles", 2.0)
    lapsed: DayCount = WindowRef("cycles", 4.0)
    own_cycle_factor: Annotated[float, Field(gt=0)] = 2.0
    own_cycle_min_purchase_days: Annotated[int, Field(ge=2)] = 3


class ModelConfig(_Table):
    """BG/NBD and Gamma-Gamma: when to fit, on how many customers, and the CLV horizon."""

    enabled: bool = True
    time_unit: TimeUnit = "weeks"
    p_alive_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.3
    min_customers: Annotated[int, Field(ge=10)] = 200
    min_repeat_customers: Annotated[int, Field(ge=5)] = 50
    max_fit_customers: Annotated[int, Field(ge=100)] = 50_000
    clv_horizon: Span = TimeSpan(52.0, "weeks")
    clv_periods: Annotated[int, Field(ge=1, le=120)] = 12
    clv_discount_rate: Annotated[float, Field(gt=-1, lt=1)] = 0.01


class RfmConfig(_Table):
    """The named-segment map (a preset or a path) and its optional splits."""

    segment_map: str = "rf_grid"
    splits: dict[str, bool] = Field(default_factory=dict)


class CalibrationConfig(_Table):
    """How often windows, thresholds and fits are refreshed."""

    refresh_every: Span = TimeSpan(7.0, "days")


class RuleSpec(_Table):
    """One stage rule: all its conditions must hold (an empty rule always matches)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    stage: Annotated[str, Field(pattern=_STAGE)]
    description: str = ""
    min_orders: Annotated[int, Field(ge=0)] | None = None
    max_orders: Annotated[int, Field(ge=0)] | None = None
    min_purchase_days: Annotated[int, Field(ge=0)] | None = None
    max_purchase_days: Annotated[int, Field(ge=0)] | None = None
    min_revenue: float | None = None
    max_revenue: float | None = None
    min_days_since_last_order: Window | None = None
    max_days_since_last_order: Window | None = None
    min_days_since_first_order: Window | None = None
    max_days_since_first_order: Window | None = None
    min_gap_before_last_order: Window | None = None
    overdue: bool | None = None
    min_r_score: Score | None = None
    max_r_score: Score | None = None
    min_f_score: Score | None = None
    max_f_score: Score | None = None
    min_m_score: Score | None = None
    max_m_score: Score | None = None
    nps_class: list[NpsClass] | None = None

    @property
    def conditions(self) -> dict[str, object]:
        """The conditions this rule sets, in declaration order."""
        skip = {"id", "stage", "description"}
        return {
            name: value
            for name, value in self.__dict__.items()
            if name not in skip and value is not None
        }


class StageRules(_Table):
    """A complete, validated rules file."""

    money: MoneyConfig = MoneyConfig()
    windows: WindowsConfig = WindowsConfig()
    model: ModelConfig = ModelConfig()
    rfm: RfmConfig = RfmConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    rules: list[RuleSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_rules(self) -> StageRules:
        ids = [rule.id for rule in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rule ids used twice: {twice}")
        if self.rules[-1].conditions:
            raise ValueError(
                f"the last rule ({self.rules[-1].id!r}) must have no conditions, so that every "
                "customer gets a stage"
            )
        for rule in self.rules[:-1]:
            if not rule.conditions:
                raise ValueError(f"rule {rule.id!r} has no conditions: only the last rule may")
        return self

    @property
    def stages(self) -> tuple[str, ...]:
        """Stage slugs in rule order, each once."""
        return tuple(dict.fromkeys(rule.stage for rule in self.rules))

    @property
    def fingerprint(self) -> str:
        """Identifies these rules; stored with each calibration."""
        return _digest(self)

    def part_fingerprint(self, part: Literal["money", "windows", "model", "rfm"]) -> str:
        """Identifies one table, so a preview can reuse the calibration parts it leaves alone."""
        return _digest(getattr(self, part))

    @property
    def source(self) -> str:
        """The file these rules came from, for messages."""
        return self._source

    _source: str = PrivateAttr(default="built-in default rules")


def _digest(model: BaseModel) -> str:
    data = model.model_dump(mode="python")
    text = json.dumps(data, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, WindowRef | TimeSpan):
        return str(value)
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def load_rules(path: Path | str | None = None) -> StageRules:
    """Read and validate a rules file; ``None`` means the packaged default rules.

    Every problem raises :class:`~clm_hub.errors.ConfigError` naming the file and the key.
    """
    if path is None:
        resource = importlib.resources.files("clm_hub.stages") / DEFAULT_RULES
        text, source = resource.read_text(encoding="utf-8"), "built-in default rules"
    else:
        file = Path(path).expanduser()
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read stage rules {file}: {exc.strerror}") from None
        source = str(file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        rules = StageRules.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    rules._source = source
    return rules


def load_segment_map_for(rules: StageRules) -> SegmentMap:
    """The ``[rfm]`` segment map; a relative path is read relative to the rules file."""
    name = rules.rfm.segment_map
    is_path = name.endswith(".toml") or "/" in name
    if is_path and not Path(name).is_absolute() and rules.source != "built-in default rules":
        name = str(Path(rules.source).parent / name)
    try:
        return load_segment_map(name, splits=rules.rfm.splits)
    except SegmentMapError as exc:
        raise ConfigError(f"{rules.source}: rfm.segment_map: {exc}") from None


def whole_days(value: float) -> int:
    """Windows are whole days, rounded up and at least one."""
    return max(1, math.ceil(value - 1e-9))
