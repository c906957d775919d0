"""A local imitation of the Typeform API, for tests, the demo and benchmarks.

``create_app(state, faults)`` serves a ``TypeformState`` (``simstate.py``) with the
documented behaviour of surveys.md section A:

- bearer auth with personal access tokens and their scopes (401, 403 with Typeform's
  error body ``{"code", "description", "details", "help"}``);
- ``GET /me``; ``GET /forms?page&page_size<=200``; ``GET /forms/{id}`` (404 for unknown
  forms);
- ``GET /forms/{id}/responses``: ``page_size`` (default 25, max 1000), inclusive
  ``since``/``until`` on ``submitted_at`` (ISO to the second, or unix seconds), ``sort``
  (default ``submitted_at,desc``), exclusive ``after``/``before`` tokens in processing
  order, which refuse to be combined with ``sort`` (422), ``query`` over answers and
  hidden fields, ``included_response_ids``; responses younger than the state's visibility
  delay are not returned yet; an empty page is ``items: []``;
- ``DELETE /forms/{id}/responses?included_tokens=`` (at most 1000);
- ``PUT/GET/DELETE /forms/{id}/webhooks/{tag}`` and ``GET /forms/{id}/webhooks``;
- 2 requests per second per account, answered 429 with ``Retry-After``;
- faults from a ``clm_hub.sandbox.FaultPlan``.

``delivery`` builds webhook deliveries signed the way Typeform signs them.
Run it with ``clm_hub.sandbox.serve(create_app(state))``.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clm_hub import WebhookRequest
from clm_hub.sandbox import Fault, FaultPlan

from .simstate import RecordedRequest, SimForm, SimWebhook, TypeformState
from .webhooks import SIGNATURE_HEADER, sign

__all__ = ["TypeformError", "create_app", "delivery", "webhook_body"]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 25
MAX_FORMS_PAGE_SIZE = 200
MAX_DELETE = 1000
Json = object


class TypeformError(Exception):
    """An error answer with Typeform's error body."""

    def __init__(
        self, status: int, code: str, description: str, *, field: str | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        details = [] if field is None else [
            {"code": code, "description": description, "field": field, "in": "query"}
        ]  # fmt: skip
        self.body: dict[str, Json] = {
            "code": code,
            "description": description,
            "details": details,
            "help": f"https://developer.typeform.com/errors#{code}",
        }


def _invalid(field: str, description: str) -> TypeformError:
    return TypeformError(422, "VALIDATION_ERROR", description, field=field)


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it."""

    path_params: Mapping[str, str]
    query: QueryParams
    body: bytes

    def int_param(self, name: str, default: int, high: int, low: int = 1) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _invalid(name, f"{name} must be an integer") from None
        if not low <= value <= high:
            raise _invalid(name, f"{name} must be between {low} and {high}")
        return value

    def form(self, state: TypeformState) -> SimForm:
        form_id = self.path_params["form_id"]
        form = state.forms.get(form_id)
        if form is None:
            raise TypeformError(404, "FORM_NOT_FOUND", f"Non existing form with uid {form_id}")
        return form


Handler = Callable[[TypeformState, Call], tuple[int, Json]]


# -- handlers ---------------------------------------------------------------------------------


def me(state: TypeformState, call: Call) -> tuple[int, Json]:
    return 200, {"alias": "simulated", "email": "owner@example.com", "language": "en"}


def list_forms(state: TypeformState, call: Call) -> tuple[int, Json]:
    page = call.int_param("page", 1, 1_000_000)
    size = call.int_param("page_size", 10, MAX_FORMS_PAGE_SIZE)
    forms = list(state.forms.values())
    chunk = forms[(page - 1) * size : page * size]
    return 200, {
        "total_items": len(forms),
        "page_count": math.ceil(len(forms) / size),
        "items": [{"id": f.id, "title": f.title, "type": "form"} for f in chunk],
    }


def get_form(state: TypeformState, call: Call) -> tuple[int, Json]:
    return 200, call.form(state).definition()


def _instant(name: str, raw: str) -> datetime:
    try:
        if raw.isdigit():
            return datetime.fromtimestamp(int(raw), UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise _invalid(name, f"{name} must be ISO 8601 (2024-05-01T00:00:00) or unix") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _anchor(state: TypeformState, form: SimForm, name: str, token: str) -> tuple[int, int]:
    """The response's place in processing order, as stored (epoch seconds, sequence)."""
    response = state.response(form.id, token)  # deleted responses still anchor a page
    if response is None:
        raise _invalid(name, f"{name} is not the token of a response of this form")
    return int(response.submitted_at.timestamp()), response.seq


def list_responses(state: TypeformState, call: Call) -> tuple[int, Json]:
    form = call.form(state)
    q = call.query
    size = call.int_param("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    after, before, sort = q.get("after"), q.get("before"), q.get("sort")
    if sort is not None and (after is not None or before is not None):
        raise _invalid("sort", "sort cannot be combined with after or before")
    if after is not None and before is not None:
        raise _invalid("after", "after cannot be combined with before")
    visible_until = state.now().timestamp() - state.visibility_delay_s
    # Stored instants are whole seconds: ``t <= x`` is ``t <= floor(x)``, ``t >= x`` is
    # ``t >= ceil(x)``.
    where = ["deleted = 0", "submitted_at <= ?"]
    params: list[object] = [math.floor(visible_until)]
    if (raw := q.get("since")) is not None:
        where.append("submitted_at >= ?")
        params.append(math.ceil(_instant("since", raw).timestamp()))
    if (raw := q.get("until")) is not None:
        where.append("submitted_at <= ?")
        params.append(math.floor(_instant("until", raw).timestamp()))
    if (raw := q.get("included_response_ids")) is not None:
        wanted = sorted({t for t in raw.split(",") if t})
        where.append(f"token IN ({', '.join('?' * len(wanted))})")
        params.extend(wanted)
    if (raw := q.get("query")) is not None:
        where.append("instr(text, ?) > 0")
        params.append(raw.casefold())
    if after is not None:
        where.append("(submitted_at, seq) > (?, ?)")
        params.extend(_anchor(state, form, "after", after))
        order = "submitted_at, seq"
    elif before is not None:
        where.append("(submitted_at, seq) < (?, ?)")
        params.extend(_anchor(state, form, "before", before))
        order = "submitted_at DESC, seq DESC"
    else:
        field, _, direction = (sort or "submitted_at,desc").partition(",")
        if field not in ("submitted_at", "landed_at") or direction not in ("asc", "desc"):
            raise _invalid("sort", "sort must be {field},{asc|desc}, e.g. submitted_at,asc")
        order = f"{field} {direction}, seq {direction}"
    condition = " AND ".join(where)
    total = state.count_responses(form.id, condition, tuple(params))
    rows = state.select_responses(form.id, condition, tuple(params), order=order, limit=size)
    return 200, {
        "total_items": total,
        "page_count": math.ceil(total / size),
        "items": [r.to_json() for r in rows],
    }


def delete_responses(state: TypeformState, call: Call) -> tuple[int, Json]:
    form = call.form(state)
    raw = call.query.get("included_tokens")
    tokens = [t for t in (raw or "").split(",") if t]
    if not tokens:
        raise _invalid("included_tokens", "included_tokens is required")
    if len(tokens) > MAX_DELETE:
        raise _invalid("included_tokens", f"at most {MAX_DELETE} tokens per request")
    state.delete_responses(form.id, tokens)
    return 200, None


def put_webhook(state: TypeformState, call: Call) -> tuple[int, Json]:
    form = call.form(state)
    try:
        body = json.loads(call.body or b"{}")
    except ValueError:
        raise TypeformError(400, "INVALID_JSON", "Unable to process the JSON body") from None
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        raise TypeformError(400, "VALIDATION_ERROR", "url is required", field="url")
    tag = call.path_params["tag"]
    secret = body.get("secret")
    hook = SimWebhook(
        tag=tag,
        url=body["url"],
        enabled=bool(body.get("enabled", False)),
        secret=secret if isinstance(secret, str) else None,
        verify_ssl=bool(body.get("verify_ssl", True)),
    )
    form.webhooks[tag] = hook
    return 200, hook.to_json(form.id)


def get_webhook(state: TypeformState, call: Call) -> tuple[int, Json]:
    form = call.form(state)
    hook = form.webhooks.get(call.path_params["tag"])
    if hook is None:
        raise TypeformError(404, "WEBHOOK_NOT_FOUND", "Webhook not found")
    return 200, hook.to_json(form.id)


def delete_webhook(state: TypeformState, call: Call) -> tuple[int, Json]:
    form = call.form(state)
    if form.webhooks.pop(call.path_params["tag"], None) is None:
        raise TypeformError(404, "WEBHOOK_NOT_FOUND", "Webhook not found")
    return 204, None


def list_webhooks(state: TypeformState, call: Call) -> tuple[int, Json]:
    form = call.form(state)
    return 200, {"items": [hook.to_json(form.id) for hook in form.webhooks.values()]}


# -- the app ----------------------------------------------------------------------------------

_UNAUTHENTICATED = TypeformError(
    401, "AUTHENTICATION_FAILED", "Authentication credentials not found on the Request Headers"
)


def _error(exc: TypeformError, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(exc.body, status_code=exc.status, headers=dict(headers or {}))


def _throttled(state: TypeformState) -> Response:
    headers = {}
    if state.retry_after_s is not None:
        headers["Retry-After"] = f"{state.retry_after_s:g}"
    error = TypeformError(429, "RATE_LIMIT_EXCEEDED", "Too many requests, slow down")
    return _error(error, headers)


async def _fault_response(state: TypeformState, fault: Fault) -> Response:
    if fault is Fault.RATE_LIMIT:
        return _throttled(state)
    if fault is Fault.SERVER_ERROR:
        return Response("<html><body>503 Service Unavailable</body></html>", status_code=503,
                        media_type="text/html")  # fmt: skip
    if fault is Fault.TIMEOUT:
        await asyncio.sleep(state.timeout_delay_s)
        return Response(status_code=504)
    if fault is Fault.MALFORMED:
        return Response(b'{"total_items": 3, "items": [{"token": ', status_code=200,
                        media_type="application/json")  # fmt: skip
    return _error(_UNAUTHENTICATED)


def _answer(
    state: TypeformState, request: Request, body: bytes, handler: Handler, scope: str
) -> Response:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    scopes = state.tokens.get(token) if scheme.lower() == "bearer" else None
    if scopes is None:
        return _error(_UNAUTHENTICATED)
    if not state.admit():
        return _throttled(state)
    if scope not in scopes:
        return _error(TypeformError(403, "FORBIDDEN", f"Missing scope {scope} for this request"))
    try:
        status, payload = handler(state, Call(request.path_params, request.query_params, body))
    except TypeformError as exc:
        return _error(exc)
    if payload is None:
        return Response(status_code=status)
    return JSONResponse(payload, status_code=status)


def _endpoint(
    state: TypeformState, faults: FaultPlan, handler: Handler, scope: str
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        fault = faults.next_fault(path)
        if fault is not None:
            response = await _fault_response(state, fault)
        else:
            with state.lock:
                response = _answer(state, request, body, handler, scope)
        with state.lock:
            state.requests.append(
                RecordedRequest(request.method, path, request.url.query, response.status_code)
            )
        return response

    return endpoint


def create_app(state: TypeformState, faults: FaultPlan | None = None) -> Starlette:
    """The simulated Typeform API over ``state``, failing as ``faults`` says."""
    plan = faults or FaultPlan()

    def route(path: str, handler: Handler, method: str, scope: str) -> Route:
        return Route(path, _endpoint(state, plan, handler, scope), methods=[method])

    form = "/forms/{form_id}"
    hook = f"{form}/webhooks/{{tag}}"
    return Starlette(
        routes=[
            route("/me", me, "GET", "accounts:read"),
            route("/forms", list_forms, "GET", "forms:read"),
            route(form, get_form, "GET", "forms:read"),
            route(f"{form}/responses", list_responses, "GET", "responses:read"),
            route(f"{form}/responses", delete_responses, "DELETE", "responses:write"),
            route(f"{form}/webhooks", list_webhooks, "GET", "webhooks:read"),
            route(hook, get_webhook, "GET", "webhooks:read"),
            route(hook, put_webhook, "PUT", "webhooks:write"),
            route(hook, delete_webhook, "DELETE", "webhooks:write"),
        ]
    )


# -- webhooks ---------------------------------------------------------------------------------


def webhook_body(
    state: TypeformState, form_id: str, token: str, *, event_id: str | None = None
) -> bytes:
    """The JSON body Typeform posts when the response ``token`` is submitted."""
    with state.lock:
        form = state.forms[form_id]
        response = state.response(form_id, token)
        if response is None:
            raise KeyError(f"form {form_id} has no response {token}")
        row = response.to_json()
        payload = {
            "event_id": event_id or uuid.uuid4().hex.upper(),
            "event_type": "form_response",
            "form_response": {
                "form_id": form.id,
                "token": row["token"],
                "landed_at": row["landed_at"],
                "submitted_at": row["submitted_at"],
                "hidden": row["hidden"],
                "calculated": row["calculated"],
                "variables": [],
                "definition": {
                    "id": form.id,
                    "title": form.title,
                    "fields": [f.to_json() for f in form.fields],
                },
                "answers": row["answers"],
            },
        }
    return json.dumps(payload, separators=(",", ":")).encode()


def delivery(
    state: TypeformState,
    form_id: str,
    token: str,
    *,
    secret: str | None = None,
    tag: str | None = None,
    url: str = "https://hub.example.com/webhooks/typeform",
    event_id: str | None = None,
    body: bytes | None = None,
) -> WebhookRequest:
    """A delivery as the hub receives it, signed with ``secret`` or the secret of the
    form's webhook ``tag`` (unsigned when neither is set)."""
    with state.lock:
        hook = state.forms[form_id].webhooks.get(tag) if tag is not None else None
    if hook is not None:
        secret, url = secret or hook.secret, hook.url
    raw = body if body is not None else webhook_body(state, form_id, token, event_id=event_id)
    headers = {"content-type": "application/json", "user-agent": "Typeform Webhooks"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, raw)
    return WebhookRequest(
        method="POST", url=url, headers=headers, body=raw, received_at=datetime.now(UTC)
    )
