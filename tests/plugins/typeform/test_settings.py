"""The Typeform connector's settings: secrets, hosts, forms and identity sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clm_hub_plugins.typeform import Region, Typeform, TypeformSettings


def test_the_token_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "typeform"
    secret.write_text("tfp_from_file\n")
    settings = TypeformSettings.model_validate({"token_file": str(secret)})
    assert settings.token.get_secret_value() == "tfp_from_file"
    assert "tfp_from_file" not in repr(settings)


@pytest.mark.parametrize(
    ("values", "host"),
    [
        ({}, "https://api.typeform.com"),
        ({"region": "eu"}, "https://api.eu.typeform.com"),
        ({"region": "eu-2025"}, "https://api.typeform.eu"),
        ({"region": "eu", "base_url": "http://127.0.0.1:9000/"}, "http://127.0.0.1:9000"),
    ],
)
def test_the_host_follows_the_region_unless_base_url_is_set(
    values: dict[str, str], host: str
) -> None:
    settings = TypeformSettings.model_validate({"token": "tfp_x", **values})
    assert Typeform.http_options(settings).base_url == host
    assert Region(settings.region)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"forms": []}, 'at least one form id, or "all"'),
        ({"forms": ["AbC123", "AbC123"]}, "lists a form id twice"),
        ({"forms": ["not a form/id"]}, "String should match pattern"),
        ({"hidden_email": None, "hidden_customer_id": None, "email_answer": False},
         "no way to tell who answered"),
        ({"page_size": 1001}, "less than or equal to 1000"),
        ({"apikey": "x"}, "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_invalid_settings_say_what_is_wrong(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeformSettings.model_validate({"token": "tfp_x", **values})


def test_forms_default_to_all_forms() -> None:
    assert TypeformSettings.model_validate({"token": "tfp_x"}).forms == "all"
