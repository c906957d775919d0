"""The survey-response stream's cursor: the newest answer seen, per form.

One stream covers several forms read one after another, so a single timestamp cannot say
where each form stands: after form A is read, a crash during form B would resume B from A's
newest answer and lose B's answers in between. The token keeps every form's own newest
``submitted_at``; ``updated_since`` is the oldest of them (how far behind the stream is).
A form without an entry (new, listed later, or never answered) is read in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from clm_hub import StreamCursor

__all__ = ["FormCursors"]

_VERSION = 1


@dataclass
class FormCursors:
    """Per form, the newest ``submitted_at`` read so far."""

    forms: dict[str, datetime] = field(default_factory=dict)
    fallback: datetime | None = None
    """For forms without an entry: a plain ``updated_since`` cursor without our token."""

    @classmethod
    def decode(cls, cursor: StreamCursor | None) -> FormCursors:
        """The state a stored cursor describes (empty: read everything)."""
        if cursor is None:
            return cls()
        forms = _parse_token(cursor.token)
        if forms is None:
            return cls(fallback=cursor.updated_since)
        return cls(forms)

    def since(self, form_id: str, overlap: timedelta) -> datetime | None:
        """Where to start reading ``form_id``: ``None`` means a full read."""
        newest = self.forms.get(form_id, self.fallback)
        return None if newest is None else newest - overlap

    def advance(self, form_id: str, newest: datetime | None) -> None:
        """Record answers up to ``newest`` as read (never moves a form backwards)."""
        if newest is None:
            return
        current = self.forms.get(form_id)
        self.forms[form_id] = newest if current is None else max(current, newest)

    def keep_only(self, form_ids: set[str]) -> None:
        """Forget forms no longer read, so they do not hold ``updated_since`` back."""
        self.forms = {k: v for k, v in self.forms.items() if k in form_ids}

    def to_cursor(self) -> StreamCursor:
        token = json.dumps(
            {
                "v": _VERSION,
                "forms": {k: v.astimezone(UTC).isoformat() for k, v in sorted(self.forms.items())},
            },
            separators=(",", ":"),
        )
        oldest = min(self.forms.values(), default=None)
        return StreamCursor(updated_since=oldest, token=token)


def _parse_token(token: str | None) -> dict[str, datetime] | None:
    if not token:
        return None
    try:
        body = json.loads(token)
        if not isinstance(body, dict) or body.get("v") != _VERSION:
            return None
        forms = body["forms"]
        out = {str(k): datetime.fromisoformat(v) for k, v in forms.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return {k: v if v.tzinfo else v.replace(tzinfo=UTC) for k, v in out.items()}
