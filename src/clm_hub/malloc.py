"""Fewer glibc malloc arenas for the hub's process.

glibc gives threads their own malloc arenas (up to 8 per core) and seldom returns their freed
memory to the system. The hub's threads (the page writer, ``asyncio.to_thread`` workers, the
simulators' and the dashboard's servers) each allocate a page's worth of records at a time, so
arenas hold memory that no object uses: ``clm-hub demo --customers 100000`` peaked at 484 MB
with the default and 420 MB with two arenas, no slower (3:24 against 4:06). Two is the value
commonly recommended for threaded Python services; ``MALLOC_ARENA_MAX`` set by the operator wins.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

__all__ = ["ARENAS", "limit_arenas"]

ARENAS: Final = 2
_M_ARENA_MAX: Final = -8
"""glibc's ``mallopt`` parameter (malloc.h)."""


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, before the process starts threads; returns whether it did
    (not on other platforms or C libraries, nor when ``MALLOC_ARENA_MAX`` is set)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
