"""Simulators run over real HTTP and apply injected faults in order."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clm_hub.sandbox import Fault, FaultPlan, serve


def make_app(faults: FaultPlan) -> Starlette:
    async def hello(request: Request) -> Response:
        fault = faults.next_fault(request.url.path)
        if fault is Fault.RATE_LIMIT:
            return JSONResponse(
                {"error": "slow down"}, status_code=429, headers={"Retry-After": "1"}
            )
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route("/hello", hello), Route("/other", hello)])


def test_serve_answers_over_real_http() -> None:
    with serve(make_app(FaultPlan())) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/hello").json() == {"hello": "world"}


def test_faults_apply_to_matching_paths_in_order() -> None:
    faults = FaultPlan()
    faults.inject(Fault.RATE_LIMIT, times=2, path_prefix="/hello")
    with serve(make_app(faults)) as url:
        assert httpx.get(f"{url}/other").status_code == 200
        assert httpx.get(f"{url}/hello").status_code == 429
        assert httpx.get(f"{url}/hello").status_code == 429
        assert httpx.get(f"{url}/hello").status_code == 200
    assert faults.applied == [(Fault.RATE_LIMIT, "/hello"), (Fault.RATE_LIMIT, "/hello")]
    assert faults.pending == 0
