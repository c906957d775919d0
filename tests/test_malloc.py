"""The malloc arena cap: applied on glibc Linux, skipped where the operator chose."""

from __future__ import annotations

import sys

import pytest

from clm_hub.malloc import limit_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc-only tuning")
def test_caps_arenas_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert limit_arenas() is True


def test_the_operators_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False
