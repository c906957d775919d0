"""Bulk query operations: the first full sync of a large shop without paging.

``bulkOperationRunQuery`` starts a server-side export, which is polled until it completes;
its result is a JSONL file at a signed URL, streamed line by line. Any failure that paging
can work around (no free bulk slot, a failed or overlong operation) returns ``None`` so the
caller pages instead; only a denied scope is raised.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
from structlog.typing import FilteringBoundLogger

from clm_hub.errors import AuthError, MalformedResponse, RequestRejected, UpstreamError

from . import documents as docs
from .transport import GraphQLTransport
from .vendor import BulkOperationNode, BulkRunPayload, JsonObject

__all__ = ["BulkRunner"]


class BulkRunner:
    """Runs one bulk query to completion and streams its rows."""

    def __init__(self, transport: GraphQLTransport, log: FilteringBoundLogger) -> None:
        self.transport = transport
        self.settings = transport.settings
        self.connector_id = transport.connector_id
        self.log = log

    async def run(self, root: str, fields: str) -> BulkOperationNode | None:
        """The completed operation for ``{ root { edges { node { fields } } } }``, or None."""
        started = await self._start(root, fields)
        return None if started is None else await self._wait(started)

    async def _start(self, root: str, fields: str) -> BulkOperationNode | None:
        answer = await self.transport.execute(
            docs.BULK_RUN, {"query": docs.bulk_query(root, fields)}
        )
        self.transport.require_clean(answer, docs.BULK_RUN)
        payload = BulkRunPayload.model_validate(answer.data.get("bulkOperationRunQuery") or {})
        if payload.user_errors:
            codes = sorted(str(e.code) for e in payload.user_errors)
            if {"OPERATION_IN_PROGRESS", "LIMIT_REACHED"} & set(codes):
                self.log.warning("shopify.bulk_busy", root=root, codes=codes)
                return None
            detail = "; ".join(e.message for e in payload.user_errors)
            raise RequestRejected(self.connector_id, f"bulkOperationRunQuery refused: {detail}")
        if payload.bulk_operation is None:
            raise MalformedResponse(self.connector_id, "bulkOperationRunQuery returned nothing")
        self.log.info("shopify.bulk_started", root=root, operation=payload.bulk_operation.id)
        return payload.bulk_operation

    async def _wait(self, operation: BulkOperationNode) -> BulkOperationNode | None:
        deadline = time.monotonic() + self.settings.bulk_timeout_s
        while True:
            current = await self._poll(operation.id)
            if current.status == "COMPLETED":
                return current
            if current.status in ("FAILED", "CANCELED", "CANCELING", "EXPIRED"):
                if current.error_code == "ACCESS_DENIED":
                    raise AuthError(
                        self.connector_id,
                        "the bulk operation was denied access: grant the custom app the "
                        "read_customers and read_orders scopes",
                    )
                self.log.warning(
                    "shopify.bulk_failed", status=current.status, error_code=current.error_code
                )
                return None
            if time.monotonic() > deadline:
                await self.transport.execute(docs.BULK_CANCEL, {"id": operation.id})
                self.log.warning("shopify.bulk_timed_out", operation=operation.id)
                return None
            await asyncio.sleep(self.settings.bulk_poll_interval_s)

    async def _poll(self, operation_id: str) -> BulkOperationNode:
        # bulkOperation(id:) exists from 2026-01; older versions only have the (since
        # deprecated) currentBulkOperation.
        by_id = self.settings.api_version >= "2026-01"
        document = docs.BULK_POLL if by_id else docs.BULK_POLL_LEGACY
        answer = await self.transport.execute(document, {"id": operation_id} if by_id else {})
        self.transport.require_clean(answer, document)
        raw = answer.data.get("bulkOperation" if by_id else "currentBulkOperation")
        if raw is None:
            raise MalformedResponse(self.connector_id, f"bulk operation {operation_id} vanished")
        current = BulkOperationNode.model_validate(raw)
        if current.id != operation_id:
            raise RequestRejected(
                self.connector_id,
                f"another bulk operation ({current.id}) replaced {operation_id}; "
                "only one may run per app and shop before API version 2026-01",
            )
        return current

    async def rows(self, url: str) -> AsyncIterator[JsonObject]:
        """The result file's top-level rows, streamed; the signed URL is never logged."""
        http = self.transport.http
        http.stats.api_calls += 1
        try:
            async with http.client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise UpstreamError(
                        self.connector_id,
                        f"downloading the bulk result failed with {response.status_code}",
                        status_code=response.status_code,
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError:
                        raise MalformedResponse(
                            self.connector_id, "the bulk result has a line that is not JSON"
                        ) from None
                    if not isinstance(row, dict):
                        raise MalformedResponse(
                            self.connector_id, "the bulk result has a line that is not an object"
                        )
                    # Rows of nested connections carry __parentId; our queries have none.
                    if "__parentId" not in row:
                        yield row
        except httpx.TimeoutException:
            raise UpstreamError(
                self.connector_id, "downloading the bulk result timed out"
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamError(
                self.connector_id, f"downloading the bulk result failed ({type(exc).__name__})"
            ) from None
