"""Settings: file, environment precedence, secrets from files, errors naming key and file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from clm_hub.connectors.base import ConnectorSettings
from clm_hub.errors import ConfigError
from clm_hub.settings import DEFAULT_DATABASE_URL, load_settings


class AcmeSettings(ConnectorSettings):
    account: str
    api_token: SecretStr
    page_size: int = 100


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.tag_prefix == "clm"
    assert settings.connectors == {}


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "sqlite:///x.db"\ntag_prefix = "hub"\n')
    settings = load_settings(path)
    assert settings.database_url == "sqlite:///x.db"
    assert settings.tag_prefix == "hub"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'tag_prefix = "hub"\n')
    monkeypatch.setenv("CLM_HUB_TAG_PREFIX", "env")
    assert load_settings(path).tag_prefix == "env"


def test_nested_environment_variable_sets_a_connector_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[connectors.acme]\nplugin = "acme"\naccount = "a1"\n')
    monkeypatch.setenv("CLM_HUB_CONNECTORS__ACME__API_TOKEN", "tok-from-env")
    settings = load_settings(path)
    acme = settings.connector_settings("acme", AcmeSettings)
    assert isinstance(acme, AcmeSettings)
    assert acme.account == "a1"
    assert acme.api_token.get_secret_value() == "tok-from-env"


def test_secret_read_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("tok-from-file\n", encoding="utf-8")
    path = write(
        tmp_path,
        '[connectors.acme]\nplugin = "acme"\naccount = "a1"\napi_token_file = "token.txt"\n',
    )
    acme = load_settings(path).connector_settings("acme", AcmeSettings)
    assert isinstance(acme, AcmeSettings)
    assert acme.api_token.get_secret_value() == "tok-from-file"


def test_missing_secret_file_names_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[connectors.acme]\nplugin = "acme"\naccount = "a1"\napi_token_file = "nope.txt"\n',
    )
    with pytest.raises(ConfigError, match=r"api_token_file: cannot read"):
        load_settings(path).connector_settings("acme", AcmeSettings)


def test_unknown_top_level_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'tag_prefx = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}: tag_prefx: unknown key" in str(info.value)


def test_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'http_port = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}: http_port:" in str(info.value)


def test_unknown_connector_key_names_the_connector_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[connectors.acme]\nplugin = "acme"\naccount = "a"\napi_token = "t"\npage_sise = 5\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path).connector_settings("acme", AcmeSettings)
    assert f"{path}: connectors.acme.page_sise: unknown key" in str(info.value)


def test_missing_credential_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[connectors.acme]\nplugin = "acme"\naccount = "a"\n')
    with pytest.raises(ConfigError, match=r"connectors\.acme\.api_token: Field required"):
        load_settings(path).connector_settings("acme", AcmeSettings)


def test_schedule_accepts_human_durations_and_cron(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[connectors.a]\nplugin = "acme"\nschedule = { interval = "5m", jitter = "10s" }\n'
        '[connectors.b]\nplugin = "acme"\nschedule = { cron = "*/10 * * * *" }\n',
    )
    settings = load_settings(path)
    assert settings.connectors["a"].schedule.interval == timedelta(minutes=5)
    assert settings.connectors["a"].schedule.jitter == timedelta(seconds=10)
    assert settings.connectors["b"].schedule.cron == "*/10 * * * *"


def test_bad_cron_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[connectors.a]\nplugin = "acme"\nschedule = { cron = "often" }\n')
    with pytest.raises(ConfigError, match=r"connectors\.a\.schedule\.cron"):
        load_settings(path)


def test_connector_id_must_be_usable_as_an_env_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[connectors.My-Shop]\nplugin = "acme"\n')
    with pytest.raises(ConfigError, match="lower-case"):
        load_settings(path)


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "tag_prefix = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_plugins_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'plugins_dir = ["local"]\n')
    assert load_settings(path).plugins_dir == [tmp_path / "local"]
