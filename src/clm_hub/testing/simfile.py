"""A simulator's records in a SQLite file, so that a simulated tool of millions stays off the heap.

The built-in simulators (and a plugin author's) keep their records here: in a given file (the
demo's folder) or in a temporary one removed with the object. A simulator's file needs no
durability (no journal, no fsync) and only a small page cache; seeding wraps many writes in one
transaction with ``batch()``, which nests.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SimulatorFile"]


class SimulatorFile:
    """One SQLite connection on a simulator's file, shared by its threads (callers serialise
    access, e.g. with the simulator state's lock)."""

    def __init__(self, path: Path | None, *, name: str, cache_kib: int = 8192) -> None:
        if path is None:
            folder = Path(tempfile.mkdtemp(prefix=f"clm-{name}-sim-"))
            path = folder / f"{name}.sqlite3"
            self._cleanup: weakref.finalize[..., SimulatorFile] | None = weakref.finalize(
                self, shutil.rmtree, folder, True
            )
        else:
            path.unlink(missing_ok=True)  # a simulator starts empty
            self._cleanup = None
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{int(cache_kib)}"):
            self.db.execute(f"PRAGMA {pragma}")
        self._depth = 0

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many writes (seeding); nested calls join it."""
        if self._depth == 0:
            self.db.execute("BEGIN")
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("COMMIT")

    def close(self) -> None:
        """Close the file (a temporary one is removed)."""
        self.db.close()
        if self._cleanup is not None:
            self._cleanup()
