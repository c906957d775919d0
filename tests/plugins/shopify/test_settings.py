"""The connector's settings: what is accepted, normalised and refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clm_hub_plugins.shopify import ShopifySettings
from clm_hub_plugins.shopify.settings import DEFAULT_API_VERSION
from clm_hub_plugins.shopify.transport import api_base_url


def test_shop_name_becomes_the_myshopify_domain() -> None:
    settings = ShopifySettings(shop_domain="Acme", access_token="t")
    assert settings.shop_domain == "acme.myshopify.com"
    assert api_base_url(settings) == f"https://acme.myshopify.com/admin/api/{DEFAULT_API_VERSION}"


def test_base_url_replaces_the_origin_and_keeps_the_versioned_path() -> None:
    settings = ShopifySettings(
        shop_domain="acme",
        access_token="t",
        base_url="http://127.0.0.1:9000/",
        api_version="2026-07",
    )
    assert api_base_url(settings) == "http://127.0.0.1:9000/admin/api/2026-07"


@pytest.mark.parametrize(
    ("key", "value"),
    [("shop_domain", "shop.acme.com"), ("api_version", "2026-05"), ("page_size", 251)],
)
def test_invalid_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(ValidationError, match=key):
        ShopifySettings.model_validate({"shop_domain": "acme", "access_token": "t", key: value})


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("shpat_from_file\n")
    settings = ShopifySettings.model_validate(
        {"shop_domain": "acme", "access_token_file": str(token)}
    )
    assert settings.access_token.get_secret_value() == "shpat_from_file"
    assert "shpat_from_file" not in repr(settings)
