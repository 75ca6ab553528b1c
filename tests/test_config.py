"""Settings: file, environment overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowboard.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_repo_config_file_matches_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the default data_dir is relative to the working directory
    from_file = load_settings(REPO / "config.toml", environ={})
    defaults = load_settings(None, environ={})
    assert from_file.data_path == defaults.data_path == REPO / "data"
    assert from_file.model_copy(update={"data_dir": "./data"}) == defaults


def test_env_overrides_nested_keys(tmp_path: Path) -> None:
    env = {
        "FLOWBOARD_SERVER__PORT": "9000",
        "FLOWBOARD_PROVIDERS__VEO__API_KEY": "k",
        "FLOWBOARD_FIRESTORE__ENABLED": "true",
    }
    settings = load_settings(REPO / "config.toml", environ=env)
    assert settings.server.port == 9000
    assert settings.providers.veo.api_key == "k"
    assert settings.firestore.enabled is True


def test_errors_name_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[sse]\nheartbeat_seconds = -1\n")
    with pytest.raises(ConfigError, match=r"sse\.heartbeat_seconds"):
        load_settings(bad, environ={})
    bad.write_text("[sse\n")
    with pytest.raises(ConfigError, match=r"c\.toml"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "none.toml", environ={})
