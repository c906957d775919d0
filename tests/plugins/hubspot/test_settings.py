"""The HubSpot settings model: one auth mode, limits from the tier, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clm_hub_plugins.hubspot import HubSpotSettings


def test_a_private_app_token_alone_is_enough() -> None:
    settings = HubSpotSettings(access_token="pat-na1-x")
    assert not settings.uses_oauth


def test_both_auth_modes_at_once_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        HubSpotSettings(
            access_token="pat-na1-x", client_id="c", client_secret="s", refresh_token="r"
        )


def test_oauth_without_its_client_secret_names_what_is_missing() -> None:
    with pytest.raises(ValidationError, match="missing: client_secret"):
        HubSpotSettings(client_id="c", refresh_token="r")


def test_no_credentials_say_what_to_set() -> None:
    with pytest.raises(ValidationError, match=r"set access_token .* or client_id"):
        HubSpotSettings()


def test_limits_default_from_the_tier_and_the_app_type() -> None:
    private = HubSpotSettings(access_token="pat-na1-x", tier="professional")
    oauth = HubSpotSettings(client_id="c", client_secret="s", refresh_token="r")
    assert (private.effective_burst_limit, private.effective_daily_limit) == (190, 625_000)
    assert (oauth.effective_burst_limit, oauth.effective_daily_limit) == (110, 250_000)


def test_lifecyclestage_sync_without_a_map_is_refused() -> None:
    with pytest.raises(ValidationError, match="lifecyclestage_map is empty"):
        HubSpotSettings(access_token="pat-na1-x", lifecyclestage_sync="forward_only")


def test_the_token_can_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("pat-na1-from-file\n")
    settings = HubSpotSettings.model_validate({"access_token_file": str(tmp_path / "token")})
    assert settings.access_token is not None
    assert settings.access_token.get_secret_value() == "pat-na1-from-file"
