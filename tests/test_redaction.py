"""Secrets never appear in log lines or exception text."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest
import respx
import structlog
from pydantic import SecretStr

from clm_hub.connectors.base import ConnectorSettings
from clm_hub.connectors.http import HttpOptions, RetryPolicy, build_http_client
from clm_hub.errors import UpstreamError
from clm_hub.log import configure_logging
from clm_hub.redaction import MASK, Redactor, secrets_in
from clm_hub.testing import VirtualClock

SECRET = "pat-na1-0123456789abcdef"


class Creds(ConnectorSettings):
    token: SecretStr
    other: SecretStr | None = None


def test_redactor_masks_every_known_secret_and_query_strings() -> None:
    redactor = Redactor([SECRET, "hunter22"])
    text = f"token={SECRET} pw=hunter22 url=https://api.test/v1/x?hapikey={SECRET}&a=1 end"
    out = redactor.text(text)
    assert SECRET not in out and "hunter22" not in out and "hapikey" not in out
    assert out.endswith(" end")


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["ab"]).text("about a cab") == "about a cab"


def test_sensitive_headers_are_masked() -> None:
    headers = Redactor().headers({"Authorization": "Bearer x", "Accept": "json"})
    assert headers == {"Authorization": MASK, "Accept": "json"}


def test_secrets_in_finds_secret_fields() -> None:
    assert secrets_in(Creds(token=SecretStr(SECRET), other=SecretStr("xyz1"))) == [SECRET, "xyz1"]


def test_repr_of_settings_hides_secrets() -> None:
    creds = Creds(token=SecretStr(SECRET))
    assert SECRET not in repr(creds)
    assert SECRET not in str(creds.model_dump())


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(Redactor([SECRET]), level="debug", fmt="json", stream=stream)
    yield stream
    structlog.reset_defaults()


def test_log_lines_never_contain_a_secret(captured: io.StringIO) -> None:
    log = structlog.get_logger("test")
    log.info("connector.configured", token=SECRET, nested={"headers": [f"Bearer {SECRET}"]})
    try:
        raise ValueError(f"failed with {SECRET}")
    except ValueError:
        log.exception("connector.failed")
    output = captured.getvalue()
    assert SECRET not in output
    assert MASK in output
    events = [json.loads(line) for line in output.splitlines()]
    assert [e["event"] for e in events] == ["connector.configured", "connector.failed"]


async def test_retry_logs_and_final_error_never_contain_the_token(captured: io.StringIO) -> None:
    options = HttpOptions(
        base_url="https://api.test",
        headers={"Authorization": f"Bearer {SECRET}"},
        retry=RetryPolicy(attempts=2, initial_wait=0.1, jitter=0),
    )
    client = build_http_client(
        connector="acme", options=options, redactor=Redactor([SECRET]), clock=VirtualClock()
    )
    with respx.mock(base_url="https://api.test") as api:
        api.get("/x").mock(return_value=httpx.Response(500, text=f"echo {SECRET}"))
        with pytest.raises(UpstreamError) as info:
            await client.request("GET", "/x", params={"token": SECRET})
    await client.aclose()
    assert SECRET not in str(info.value)
    assert SECRET not in captured.getvalue()
    assert "http.retry" in captured.getvalue()
