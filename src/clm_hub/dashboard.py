"""A read-only dashboard for marketers and ops: who is where, what moved, is the sync healthy.

The daemon serves it at ``/`` (HTML, rendered on the server, no scripts) and the same data
at ``/api/summary`` (JSON). ``read_summary`` holds the queries; ``render_html`` escapes
every value it prints, since stage names, reasons and errors come from config and tools.
Customers appear by id only: the page has no login, so it shows no personal data.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from html import escape

from sqlalchemy import Engine, func, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from clm_hub.records import now_utc
from clm_hub.status import read_status
from clm_hub.store.tables import CustomerState, StageTransition

__all__ = [
    "ConnectorHealth",
    "Summary",
    "TransitionView",
    "dashboard_routes",
    "read_summary",
    "render_html",
    "summary_json",
]

_state = CustomerState.__table__  # type: ignore[attr-defined]
_transition = StageTransition.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TransitionView:
    """One recent stage change."""

    customer_id: int
    from_stage: str | None
    to_stage: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class ConnectorHealth:
    """One connector stream's last run, how far behind its data is, and what it rejected."""

    connector: str
    stream: str
    status: str
    last_run_at: datetime | None
    lag_seconds: float | None
    error: str | None
    rejected: int


@dataclass(frozen=True)
class Summary:
    """Everything the dashboard shows, read at ``generated_at``."""

    generated_at: datetime
    customers: int
    stages: dict[str, int]
    segments: dict[str, int]
    nps: dict[str, int]
    transitions: list[TransitionView]
    connectors: list[ConnectorHealth]
    rejected_total: int


def read_summary(engine: Engine, *, now: datetime, recent: int = 20) -> Summary:
    """The dashboard's numbers, straight from the store (nothing cached)."""
    with engine.connect() as conn:
        stages = {
            str(stage): int(n)
            for stage, n in conn.execute(
                select(_state.c.stage, func.count()).group_by(_state.c.stage)
            )
        }
        nps = {
            str(name): int(n)
            for name, n in conn.execute(
                select(_state.c.nps_class, func.count())
                .where(_state.c.nps_class.is_not(None))
                .group_by(_state.c.nps_class)
            )
        }
        # Segments are a JSON list per customer; counting in Python works on every backend.
        segments: Counter[str] = Counter()
        for (values,) in conn.execute(select(_state.c.segments)):
            segments.update(values or [])
        t = _transition.c
        transitions = [
            TransitionView(r.customer_id, r.from_stage, r.to_stage, r.at, r.reason)
            for r in conn.execute(select(_transition).order_by(t.id.desc()).limit(recent))
        ]
    status = read_status(engine, now=now, recent=0)
    lags = {(c.connector, c.stream): c.lag_seconds for c in status.cursors}
    connectors = [
        ConnectorHealth(
            run.connector,
            run.stream,
            run.status,
            run.finished_at or run.started_at,
            lags.get((run.connector, run.stream)),
            run.error,
            status.rejected_counts.get((run.connector, run.stream), 0),
        )
        for run in status.runs
    ]
    return Summary(
        generated_at=now,
        customers=sum(stages.values()),
        stages=dict(sorted(stages.items(), key=lambda item: (-item[1], item[0]))),
        segments=dict(sorted(segments.items(), key=lambda item: (-item[1], item[0]))),
        nps=dict(sorted(nps.items())),
        transitions=transitions,
        connectors=connectors,
        rejected_total=sum(status.rejected_counts.values()),
    )


def summary_json(summary: Summary) -> dict[str, object]:
    """The summary as JSON-ready values (timestamps in ISO 8601)."""
    raw = asdict(summary)

    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    result = plain(raw)
    assert isinstance(result, dict)
    return result


# -- HTML -------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020}.ok{color:#1b5e20}.muted{color:#777}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """A table from already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">nothing yet</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _when(value: datetime | None) -> str:
    return "never" if value is None else escape(value.strftime("%Y-%m-%d %H:%M:%S %Z").strip())


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _counts(counts: dict[str, int], total: int, label: str) -> str:
    rows = [
        (escape(name), f"{n:,}", f"{100 * n / total:.1f}%" if total else "-")
        for name, n in counts.items()
    ]
    return _table((label, "customers", "share"), rows, {1, 2})


def render_html(summary: Summary) -> str:
    """The dashboard page; every value from the store is escaped."""
    s = summary
    status_class = {"ok": "ok", "failed": "bad", "partial": "bad"}
    connectors = _table(
        ("connector", "stream", "last run", "status", "lag", "rejected", "error"),
        [
            (
                escape(c.connector),
                escape(c.stream),
                _when(c.last_run_at),
                f'<span class="{status_class.get(c.status, "muted")}">{escape(c.status)}</span>',
                _lag(c.lag_seconds),
                f"{c.rejected:,}",
                escape(c.error or ""),
            )
            for c in s.connectors
        ],
        {5},
    )
    transitions = _table(
        ("when", "customer", "from", "to", "why"),
        [
            (
                _when(t.at),
                str(t.customer_id),
                escape(t.from_stage or "(new)"),
                escape(t.to_stage),
                escape(t.reason),
            )
            for t in s.transitions
        ],
        set(),
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>clm-hub</title><style>{_CSS}</style></head><body>"
        f"<h1>clm-hub: {s.customers:,} customers</h1>"
        f'<p class="muted">As of {_when(s.generated_at)}; the same data as JSON at '
        '<a href="api/summary">api/summary</a>.</p>'
        f"<h2>Lifecycle stages</h2>{_counts(s.stages, s.customers, 'stage')}"
        f"<h2>Segments</h2>{_counts(s.segments, s.customers, 'segment')}"
        f"<h2>NPS</h2>{_counts(s.nps, sum(s.nps.values()), 'class')}"
        f"<h2>Recent stage changes</h2>{transitions}"
        f"<h2>Connectors</h2>{connectors}"
        f"<p>Rejected records in total: {s.rejected_total:,} "
        '<span class="muted">(details: <code>clm-hub status</code>)</span></p>'
        "</body></html>"
    )


# -- routes -----------------------------------------------------------------------------


def dashboard_routes(
    engine: Engine, *, now: Callable[[], datetime] = now_utc, recent: int = 20
) -> list[Route]:
    """``GET /`` (HTML) and ``GET /api/summary`` (JSON), read in a worker thread so the
    daemon's event loop keeps answering health checks meanwhile."""

    async def summary() -> Summary:
        return await asyncio.to_thread(read_summary, engine, now=now(), recent=recent)

    async def page(request: Request) -> Response:
        return HTMLResponse(render_html(await summary()))

    async def api(request: Request) -> Response:
        return JSONResponse(summary_json(await summary()))

    return [
        Route("/", page, methods=["GET"]),
        Route("/dashboard", page, methods=["GET"]),
        Route("/api/summary", api, methods=["GET"]),
    ]
