"""glibc malloc tuning: applied on glibc Linux, skipped where the operator chose."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from clm_hub.malloc import fix_mmap_threshold, limit_arenas

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc-only tuning",
)


@glibc
def test_caps_arenas_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas() is True


def test_the_operators_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False


MAPPED_AFTER_A_FREE = textwrap.dedent("""
    import ctypes, os, sys
    import numpy as np
    from clm_hub.malloc import fix_mmap_threshold

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        ).split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    first = np.ones(1 << 18)  # 2 MiB: mapped, and freeing it raises glibc's own threshold
    del first
    before = libc.mallinfo2().hblkhd
    second = np.ones(1 << 18)
    print(libc.mallinfo2().hblkhd - before >= 1 << 21)
""")


@glibc
def test_large_blocks_stay_mapped_after_one_is_freed() -> None:
    """With glibc's sliding threshold the second array comes from the heap (and fragments it
    when freed); with the fixed one it is mapped again, and unmapped when freed."""

    def mapped(mode: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        run = subprocess.run(
            [sys.executable, "-c", MAPPED_AFTER_A_FREE, mode],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        return run.stdout.strip()

    assert (mapped("default"), mapped("fixed")) == ("False", "True")
