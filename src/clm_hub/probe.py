"""``clm-hub check`` online: one cheap authenticated call per configured connector.

A config can be valid and still useless: a revoked token, a missing scope, a wrong region
or base URL. Each enabled connector makes the call its plugin chose for ``check()``
(concurrently, each with a time limit), and the answer says which setting to fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from clm_hub.redaction import Redactor
from clm_hub.runtime import ConfiguredConnector, open_connector

__all__ = ["ProbeResult", "probe_connectors"]


@dataclass(frozen=True)
class ProbeResult:
    """What one connector's credential check said (``error`` None: accepted)."""

    connector_id: str
    error: str | None


async def probe_connectors(
    configured: Sequence[ConfiguredConnector], redactor: Redactor, *, limit_s: float = 30.0
) -> list[ProbeResult]:
    """Check the credentials of every enabled, validly configured connector."""
    items = [item for item in configured if item.ok and item.enabled]
    return list(await asyncio.gather(*(_probe(item, redactor, limit_s) for item in items)))


async def _probe(item: ConfiguredConnector, redactor: Redactor, limit_s: float) -> ProbeResult:
    connector = open_connector(item, redactor)
    try:
        await asyncio.wait_for(connector.check(), limit_s)
    except TimeoutError:
        return ProbeResult(item.connector_id, f"no answer within {limit_s:.0f} s: check base_url")
    except Exception as exc:  # every failure is the answer to report, redacted
        return ProbeResult(item.connector_id, redactor.text(f"{type(exc).__name__}: {exc}"))
    finally:
        await connector.http.aclose()
    return ProbeResult(item.connector_id, None)
