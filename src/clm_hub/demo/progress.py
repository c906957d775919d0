"""How the demo reports progress on a large shop: bars on a terminal, plain lines otherwise.

Seeding counts people generated; the sync reuses the ``clm-hub sync`` bars
(``BarProgress``) on a terminal and prints a line per stream and every
``LINE_EVERY`` records elsewhere, so a CI log shows a long run moving without a redraw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from clm_hub.ingest import PageCounts
from clm_hub.sync import ProgressSink, StreamResult
from clm_hub.sync_commands import BarProgress

__all__ = ["LINE_EVERY", "SeedProgress", "demo_progress"]

LINE_EVERY = 100_000
"""Records between two plain progress lines."""


class SeedProgress(Protocol):
    """Where seeding reports how many people it has generated so far."""

    def seeded(self, people: int) -> None: ...


class _Quiet:
    def seeded(self, people: int) -> None:
        pass


class _SeedBar:
    def __init__(self, progress: Progress, total: int) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task("seeding the simulators", total=total, read=0)

    def seeded(self, people: int) -> None:
        self._progress.update(self._task, completed=people, read=people)


class _SeedLines:
    def __init__(self, out: Console, total: int) -> None:
        self._out, self._total = out, total
        self._step = max(1, min(LINE_EVERY, total // 10))

    def seeded(self, people: int) -> None:
        if people % self._step == 0 or people == self._total:
            self._out.print(f"seeding: {people:,} of {self._total:,} people")


class LineProgress:
    """A sync's progress as plain lines: each stream's start and end, and every
    ``LINE_EVERY`` records in between."""

    def __init__(self, out: Console) -> None:
        self._out = out
        self._read: dict[tuple[str, str], int] = {}

    def stream_started(self, connector: str, stream: str, note: str) -> None:
        self._read[(connector, stream)] = 0
        self._out.print(f"sync: {connector} {stream} started ({note})", markup=False)

    def page_written(self, connector: str, stream: str, counts: PageCounts) -> None:
        key = (connector, stream)
        before = self._read.get(key, 0)
        self._read[key] = before + counts.read
        if before // LINE_EVERY != self._read[key] // LINE_EVERY:
            self._out.print(f"sync: {connector} {stream} {self._read[key]:,} records")

    def stream_finished(self, result: StreamResult) -> None:
        self._out.print(
            f"sync: {result.connector} {result.stream} {result.status.value}, "
            f"{result.counts.read:,} records",
            markup=False,
        )


@contextmanager
def demo_progress(
    out: Console, *, total: int, enabled: bool
) -> Iterator[tuple[SeedProgress, ProgressSink | None]]:
    """Seeding and sync progress for a shop of ``total`` people: live bars when ``out`` is
    a terminal, plain lines when not, nothing (the sync's own log) unless ``enabled``."""
    if not enabled:
        yield _Quiet(), None
        return
    if not out.is_terminal:
        yield _SeedLines(out, total), LineProgress(out)
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[read]:>10,} records"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    ) as bars:
        yield _SeedBar(bars, total), BarProgress(bars)
