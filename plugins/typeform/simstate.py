"""The simulated Typeform account's data: what tests and the demo seed and inspect.

``TypeformState`` holds forms (definitions with their questions and hidden fields), their
responses, registered webhooks, personal access tokens with their scopes, the rate-limit
window and a log of every request. The simulator app (``simulator.py``) serves it over
HTTP; its handlers and the test thread share it under ``lock``. Responses are rows of a
SQLite file (a demo's survey of millions stays off the heap), indexed for the queries the
Responses API serves: by form in processing order, and by token.

Processing order, which ``after``/``before`` follow, is the order of ``submitted_at`` (ties
in the order responses were added): a response is processed when it is submitted.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clm_hub.testing.simfile import SimulatorFile

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_TOKEN",
    "RecordedRequest",
    "SimField",
    "SimForm",
    "SimResponse",
    "SimWebhook",
    "TypeformState",
    "format_time",
]

DEFAULT_TOKEN = "tfp_SimulatedToken0000000000000000000000000001"
ALL_SCOPES = frozenset(
    {
        "accounts:read",
        "forms:read",
        "responses:read",
        "responses:write",
        "webhooks:read",
        "webhooks:write",
    }
)


def format_time(value: datetime) -> str:
    """Typeform's timestamps: UTC, to the second, with ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimField:
    """A question of a form definition."""

    id: str
    ref: str
    type: str
    title: str
    properties: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ref": self.ref,
            "title": self.title,
            "type": self.type,
            "properties": dict(self.properties),
        }

    def answer_ref(self) -> dict[str, object]:
        return {"id": self.id, "type": self.type, "ref": self.ref}


@dataclass
class SimResponse:
    """One submitted response, as the Responses API returns it."""

    token: str
    seq: int
    submitted_at: datetime
    landed_at: datetime
    hidden: dict[str, str]
    answers: list[dict[str, object]]
    deleted: bool = False

    @property
    def order(self) -> tuple[datetime, int]:
        """Its place in processing order."""
        return (self.submitted_at, self.seq)

    def to_json(self) -> dict[str, object]:
        return {
            "landing_id": self.token,
            "token": self.token,
            "response_id": self.token,
            "response_type": "completed",
            "landed_at": format_time(self.landed_at),
            "submitted_at": format_time(self.submitted_at),
            "metadata": {
                "user_agent": "Mozilla/5.0",
                "platform": "other",
                "referer": "https://acme.typeform.com/to/sim",
                "network_id": "5b2f0c1e9a",
                "browser": "default",
            },
            "hidden": dict(self.hidden),
            "calculated": {"score": 0},
            "variables": [],
            "answers": [dict(a) for a in self.answers],
        }

    def text(self) -> str:
        """What ``query=`` searches: answers and hidden fields."""
        parts = [*self.hidden.values()]
        for answer in self.answers:
            kind = str(answer.get("type"))
            parts.append(str(answer.get(kind, "")))
        return " ".join(parts).casefold()


@dataclass
class SimWebhook:
    tag: str
    url: str
    enabled: bool
    secret: str | None
    verify_ssl: bool = True

    def to_json(self, form_id: str) -> dict[str, object]:
        return {
            "id": f"wh-{form_id}-{self.tag}",
            "form_id": form_id,
            "tag": self.tag,
            "url": self.url,
            "enabled": self.enabled,
            "verify_ssl": self.verify_ssl,
        }


@dataclass
class SimForm:
    """A form: its definition and webhooks (its responses are rows: ``TypeformState``)."""

    id: str
    title: str
    fields: list[SimField]
    hidden: list[str]
    webhooks: dict[str, SimWebhook] = field(default_factory=dict)

    def definition(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "type": "form",
            "hidden": list(self.hidden),
            "fields": [f.to_json() for f in self.fields],
        }

    def field_by_ref(self, ref: str) -> SimField | None:
        return next((f for f in self.fields if f.ref == ref), None)


@dataclass(frozen=True)
class RecordedRequest:
    """A request the simulator answered, for tests to inspect."""

    method: str
    path: str
    query: str
    status: int


class TypeformState:
    """Everything the simulated account knows. Thread-safe through ``lock``."""

    def __init__(
        self,
        *,
        tokens: Mapping[str, Iterable[str]] | None = None,
        requests_per_second: int = 2,
        rate_window_s: float = 1.0,
        enforce_rate_limit: bool = True,
        retry_after_s: float | None = 1.0,
        visibility_delay_s: float = 0.0,
        timeout_delay_s: float = 30.0,
        clock: Callable[[], datetime] | None = None,
        path: Path | None = None,
    ) -> None:
        """``path`` is the SQLite file for the responses (replaced if there); None: a
        temporary file, removed with the state."""
        self.lock = threading.RLock()
        self.tokens: dict[str, frozenset[str]] = {
            token: frozenset(scopes)
            for token, scopes in (tokens or {DEFAULT_TOKEN: ALL_SCOPES}).items()
        }
        self.requests_per_second = requests_per_second
        self.rate_window_s = rate_window_s
        self.enforce_rate_limit = enforce_rate_limit
        self.retry_after_s = retry_after_s
        """``Retry-After`` on 429s (``None``: the header is left out)."""
        self.visibility_delay_s = visibility_delay_s
        """Responses submitted less than this long ago are not returned yet."""
        self.timeout_delay_s = timeout_delay_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self.forms: dict[str, SimForm] = {}
        self.requests: list[RecordedRequest] = []
        self.throttled: Counter[str] = Counter()
        self._window: deque[float] = deque()
        self._seq = 0
        self._file = SimulatorFile(path, name="typeform", cache_kib=4096)
        self._db = self._file.db
        self._db.executescript(_SCHEMA)

    # -- time and ids ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- storage --------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the lock and one transaction around many writes (seeding a large survey)."""
        with self.lock, self._file.batch():
            yield

    def close(self) -> None:
        """Close the responses' file (a temporary one is removed)."""
        with self.lock:
            self._file.close()

    def select_responses(
        self, form_id: str, where: str = "1", params: tuple[object, ...] = (),
        order: str = "submitted_at, seq", limit: int = -1,
    ) -> list[SimResponse]:  # fmt: skip
        """The form's responses matching a SQL condition, in ``order`` (deleted ones too
        unless the condition leaves them out)."""
        with self.lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM responses WHERE form_id = ? AND ({where}) "
                f"ORDER BY {order} LIMIT ?",
                (form_id, *params, limit),
            ).fetchall()
        return [_response(row) for row in rows]

    def count_responses(self, form_id: str, where: str, params: tuple[object, ...]) -> int:
        with self.lock:
            (found,) = self._db.execute(
                f"SELECT count(*) FROM responses WHERE form_id = ? AND ({where})",
                (form_id, *params),
            ).fetchone()
        return int(found)

    def response(self, form_id: str, token: str) -> SimResponse | None:
        """A response of the form by token (deleted ones too: they still anchor a page)."""
        found = self.select_responses(form_id, "token = ?", (token,), limit=1)
        return found[0] if found else None

    # -- seeding --------------------------------------------------------------------------

    def add_form(
        self,
        form_id: str | None = None,
        *,
        title: str = "How likely are you to recommend us?",
        nps_ref: str = "nps_score",
        nps_type: str = "nps",
        steps: int = 11,
        start_at_one: bool = False,
        hidden: Iterable[str] = ("email", "customer_id"),
        email_question: bool = True,
        comment_ref: str | None = "nps_reason",
    ) -> str:
        """Create a form with a recommendation question (``nps``, ``opinion_scale`` or
        ``rating``), optionally a reason and an email question; returns its id."""
        with self.lock:
            ident = form_id or secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")
            props: dict[str, object] = {}
            if nps_type in ("opinion_scale", "rating"):
                props["steps"] = steps
            if nps_type == "opinion_scale":
                props["start_at_one"] = start_at_one
            fields = [SimField(f"{ident}_nps", nps_ref, nps_type, title, props)]
            if comment_ref is not None:
                fields.append(SimField(f"{ident}_why", comment_ref, "long_text", "Why?"))
            if email_question:
                fields.append(SimField(f"{ident}_email", "contact_email", "email", "Email"))
            self.forms[ident] = SimForm(ident, title, fields, list(hidden))
            return ident

    def add_response(
        self,
        form_id: str,
        *,
        score: int | None,
        email: str | None = None,
        customer_id: str | None = None,
        email_answer: str | None = None,
        comment: str | None = None,
        submitted_at: datetime | None = None,
        hidden: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> str:
        """Submit a response: ``score`` answers the recommendation question (``None``
        leaves it unanswered), ``email``/``customer_id`` fill the hidden fields,
        ``email_answer`` answers the email question. Returns the response token."""
        with self.lock:
            form = self.forms[form_id]
            submitted = (submitted_at or self.now()).astimezone(UTC).replace(microsecond=0)
            values = {
                name: value
                for name, value in {"email": email, "customer_id": customer_id}.items()
                if value is not None and name in form.hidden
            }
            values.update(hidden or {})
            answers: list[dict[str, object]] = []
            nps = form.fields[0]
            if score is not None:
                answers.append({"field": nps.answer_ref(), "type": "number", "number": score})
            why = next((f for f in form.fields if f.type == "long_text"), None)
            if comment is not None and why is not None:
                answers.append({"field": why.answer_ref(), "type": "text", "text": comment})
            question = next((f for f in form.fields if f.type == "email"), None)
            if email_answer is not None and question is not None:
                answers.append({"field": question.answer_ref(), "type": "email",
                                "email": email_answer})  # fmt: skip
            response = SimResponse(
                token=token or secrets.token_hex(16),
                seq=self._next_seq(),
                submitted_at=submitted,
                landed_at=submitted - timedelta(seconds=70),
                hidden=values,
                answers=answers,
            )
            self._db.execute(
                "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (form_id, response.seq, response.token, _epoch(response.submitted_at),
                 _epoch(response.landed_at), json.dumps(values), json.dumps(answers),
                 response.text()),
            )  # fmt: skip
            return response.token

    def delete_responses(self, form_id: str, tokens: Iterable[str]) -> int:
        """Delete responses (as ``DELETE .../responses`` does); returns how many existed."""
        wanted = sorted(set(tokens))
        with self.lock:
            _ = self.forms[form_id]  # an unknown form is a KeyError, as before
            deleted = 0
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                deleted += self._db.execute(
                    "UPDATE responses SET deleted = 1 WHERE form_id = ? AND deleted = 0 AND "
                    f"token IN ({', '.join('?' * len(chunk))})",
                    (form_id, *chunk),
                ).rowcount
            return deleted

    # -- inspection -----------------------------------------------------------------------

    def live_responses(self, form_id: str) -> list[SimResponse]:
        """The form's responses that are not deleted, in processing order."""
        with self.lock:
            _ = self.forms[form_id]  # an unknown form is a KeyError, as before
            return self.select_responses(form_id, "deleted = 0")

    def calls(self, path: str, method: str = "GET") -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    # -- rate limit -----------------------------------------------------------------------

    def admit(self) -> bool:
        """Count a request against the per-account window; ``False`` when it is over."""
        now = time.monotonic()
        with self.lock:
            while self._window and self._window[0] <= now - self.rate_window_s:
                self._window.popleft()
            if self.enforce_rate_limit and len(self._window) >= self.requests_per_second:
                self.throttled["requests_per_second"] += 1
                return False
            self._window.append(now)
            return True


_SCHEMA = """
CREATE TABLE responses (
    form_id TEXT NOT NULL, seq INTEGER PRIMARY KEY, token TEXT NOT NULL,
    submitted_at INTEGER NOT NULL, landed_at INTEGER NOT NULL, hidden TEXT NOT NULL,
    answers TEXT NOT NULL, deleted INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX responses_order ON responses (form_id, submitted_at, seq);
CREATE INDEX responses_landed ON responses (form_id, landed_at, seq);
CREATE INDEX responses_token ON responses (form_id, token);
"""
_COLUMNS = "token, seq, submitted_at, landed_at, hidden, answers, deleted"


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _response(row: tuple[Any, ...]) -> SimResponse:
    token, seq, submitted, landed, hidden, answers, deleted = row
    return SimResponse(
        token=token,
        seq=seq,
        submitted_at=datetime.fromtimestamp(submitted, UTC),
        landed_at=datetime.fromtimestamp(landed, UTC),
        hidden=json.loads(hidden),
        answers=json.loads(answers),
        deleted=bool(deleted),
    )
