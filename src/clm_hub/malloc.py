"""glibc malloc settings for the hub's process: fewer arenas, large blocks always mapped.

glibc gives threads their own malloc arenas (up to 8 per core) and seldom returns their freed
memory to the system. The hub's threads (the page writer, ``asyncio.to_thread`` workers, the
simulators' and the dashboard's servers) each allocate a page's worth of records at a time, so
arenas hold memory that no object uses: ``clm-hub demo --customers 100000`` peaked at 484 MB
with the default and 420 MB with two arenas, no slower (3:24 against 4:06). Two is the value
commonly recommended for threaded Python services.

Blocks of ``MMAP_THRESHOLD`` bytes or more are mapped on their own and unmapped when freed.
glibc's default threshold starts at 128 KiB but rises to the size of any mapped block freed,
after which a stage recompute's per-slice numpy arrays (hundreds of kB each) come from the heap
and leave it fragmented: during a full recompute over a million customers, the heap's free but
kept memory grew from 21 to 71 MB, slice after slice; with the threshold fixed it stayed at
9-25 MB.
``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` set by the operator win.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

__all__ = ["ARENAS", "MMAP_THRESHOLD", "fix_mmap_threshold", "limit_arenas", "tune_malloc"]

ARENAS: Final = 2
MMAP_THRESHOLD: Final = 256 * 1024
_M_ARENA_MAX: Final = -8
_M_MMAP_THRESHOLD: Final = -3
"""glibc's ``mallopt`` parameters (malloc.h)."""


def tune_malloc() -> dict[str, bool]:
    """Apply both settings, before the process starts threads; says which were applied."""
    return {"arenas": limit_arenas(), "mmap_threshold": fix_mmap_threshold()}


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, before the process starts threads; returns whether it did
    (not on other platforms or C libraries, nor when ``MALLOC_ARENA_MAX`` is set)."""
    return _mallopt(_M_ARENA_MAX, arenas, "MALLOC_ARENA_MAX")


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Map blocks of ``size`` bytes or more on their own, always (see the module's docstring);
    returns whether it did (not where ``MALLOC_MMAP_THRESHOLD_`` is set or glibc is absent)."""
    return _mallopt(_M_MMAP_THRESHOLD, size, "MALLOC_MMAP_THRESHOLD_")


def _mallopt(parameter: int, value: int, variable: str) -> bool:
    if not sys.platform.startswith("linux") or variable in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(parameter, value))
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
