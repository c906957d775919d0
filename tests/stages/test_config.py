"""Stage rules files: validation with messages naming file and key, window references."""

from __future__ import annotations

from pathlib import Path

import pytest

from clm_hub.errors import ConfigError
from clm_hub.stages.config import WindowRef, load_rules
from clm_hub.stages.windows import ShopCycle, derive_windows

DEFAULT = (
    Path(__file__).resolve().parents[2] / "src/clm_hub/stages/default_rules.toml"
).read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def test_default_rules_define_the_seven_stages() -> None:
    stages = load_rules().stages
    assert stages == ("prospect", "lapsed", "at-risk", "reactivated", "vip", "loyal", "new")


def test_the_last_rule_must_have_no_conditions(tmp_path: Path) -> None:
    text = DEFAULT.replace('description = "One purchase day, recently"',
                           'description = "x"\nmin_orders = 1')  # fmt: skip
    with pytest.raises(ConfigError, match="must have no conditions"):
        load_rules(_write(tmp_path, text))


def test_unknown_condition_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, DEFAULT.replace("max_orders = 0", "max_order = 0"))
    with pytest.raises(ConfigError, match=rf"{path}: rules\.0\.max_order: unknown key"):
        load_rules(path)


def test_a_window_must_be_a_name_days_or_cycles(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        DEFAULT.replace(
            '"lapsed"\n\n[[rules]]\nid = "at-risk', '"soon"\n\n[[rules]]\nid = "at-risk'
        ),
    )
    with pytest.raises(ConfigError, match="expected 'lapsed'"):
        load_rules(path)


def test_windows_are_multiples_of_the_measured_shop_cycle_rounded_up() -> None:
    windows = derive_windows(load_rules().windows, ShopCycle(median_days=30.5, customers=500))
    assert (windows.at_risk_days, windows.lapsed_days) == (61, 122)
    assert windows.days(WindowRef("cycles", 1.5)) == 46


def test_explicit_day_windows_override_the_cycle(tmp_path: Path) -> None:
    rules = load_rules(
        _write(tmp_path, DEFAULT.replace('at_risk = "2 cycles"', 'at_risk = "45 days"'))
    )
    windows = derive_windows(rules.windows, ShopCycle(median_days=30.0, customers=500))
    assert (windows.at_risk_days, windows.at_risk_source) == (45, "set in the rules (45 days)")


def test_too_few_repeat_customers_use_the_fallback_cycle() -> None:
    windows = derive_windows(load_rules().windows, ShopCycle(median_days=3.0, customers=5))
    assert windows.cycle_days == 30.0
    assert "fewer than cycle_min_customers" in windows.cycle_source


def test_changing_a_rule_changes_the_fingerprint(tmp_path: Path) -> None:
    edited = load_rules(_write(tmp_path, DEFAULT.replace("min_m_score = 5", "min_m_score = 4")))
    assert edited.fingerprint != load_rules().fingerprint
    assert edited.part_fingerprint("windows") == load_rules().part_fingerprint("windows")
