"""Settings from the environment: the comma-separated PARLEY_CORS_ORIGINS, PARLEY_IN_PROCESS."""

from __future__ import annotations

from services.common.config import load_settings


def _settings(**env: str):
    return load_settings(
        embedded=False,
        environ={"PARLEY_JWT_SECRET": "s" * 32, "PARLEY_INTERNAL_SECRET": "i" * 32, **env},
    )


def test_cors_origins_are_none_by_default() -> None:
    assert _settings().cors_origins == ()


def test_cors_origins_are_a_comma_separated_list() -> None:
    settings = _settings(PARLEY_CORS_ORIGINS=" https://a.example/, http://127.0.0.1:3000,,")
    assert settings.cors_origins == ("https://a.example", "http://127.0.0.1:3000")


def test_in_process_calls_are_on_unless_turned_off() -> None:
    assert _settings().in_process is True
    assert _settings(PARLEY_IN_PROCESS="false").in_process is False
