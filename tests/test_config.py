"""Configuration: .env.example is complete and valid; unsafe production settings are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def example_env() -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    return {k: v for k, v in pairs}


def test_env_example_lists_every_setting_and_loads() -> None:
    env = example_env()
    assert {name.upper() for name in Settings.model_fields} == set(env)
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    assert settings.database_kind == "sqlite" and settings.redis_url is None
    # Left blank, so that `serve --workers N` can give its embedded cache a longer timeout.
    assert settings.redis_timeout_seconds is None


def test_production_refuses_the_default_or_a_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings()
    monkeypatch.setenv("JWT_SECRET", "too-short")
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings()
    monkeypatch.setenv("JWT_SECRET", "x" * 40)
    assert load_settings().environment == "production"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "unsupported DATABASE_URL scheme"),
        ({"HOLD_TTL_SECONDS": "ten"}, "HOLD_TTL_SECONDS"),
        (
            {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
            "cannot reach the postgresql database",
        ),
    ],
)
def test_bad_configuration_is_one_clear_line(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modules.cli", "migrate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///a.db",
        "sqlite+aiosqlite:///a.db",
        "postgresql://h/db",
        "postgres://h/db",
        "postgresql+asyncpg://h/db",
        "mongodb://h/db",
        "mongodb+srv://h/db",
    ],
)
def test_database_url_schemes(url: str) -> None:
    assert Settings(_env_file=None, database_url=url).database_kind in (
        "sqlite",
        "postgresql",
        "mongodb",
    )
