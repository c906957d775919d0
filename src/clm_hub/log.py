"""Structured logging: stable event names plus fields, secrets masked in every line.

JSON lines when stdout is not a terminal (daemons, containers), readable console lines
when it is. The ``Redactor`` runs as the last processor before rendering, over every
string value, so a secret that slips into an exception text is masked too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from clm_hub.redaction import Redactor

__all__ = ["configure_logging", "redaction_processor"]


def redaction_processor(redactor: Redactor) -> structlog.types.Processor:
    """A structlog processor masking secrets in every string field of an event."""

    def _redact(value: Any) -> Any:
        if isinstance(value, str):
            return redactor.text(value)
        if isinstance(value, dict):
            return {k: _redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(_redact(v) for v in value)
        return value

    def processor(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        return {key: _redact(value) for key, value in event_dict.items()}

    return processor


def configure_logging(
    redactor: Redactor,
    *,
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: Any = None,
) -> None:
    """Set up structlog (and stdlib logging of libraries) for this process."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redaction_processor(redactor),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib; keep them quiet and masked as well.
    handler = logging.StreamHandler(out)
    handler.addFilter(_RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.text(record.getMessage())
        record.args = None
        return True
