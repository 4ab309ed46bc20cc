"""The development signing secret: random per data directory, kept, shared by the workers."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from tests.support.server import Server
from tests.support.tokens import forge

OLD_CONSTANT = "dev-only-secret-change-me-in-production-0123456789"


def me(base_url: str, token: str) -> int:
    r = httpx.get(f"{base_url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def test_a_default_server_makes_keeps_and_shares_its_secret(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ticketboss.db'}"
    with Server(url, workers=2, host="0.0.0.0", JWT_SECRET="", ENVIRONMENT="development") as s:
        secret_file = tmp_path / "jwt-secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        secret = secret_file.read_text().strip()
        assert len(secret) >= 32 and secret != OLD_CONSTANT
        assert me(s.base_url, forge({}, key=OLD_CONSTANT)) == 401
        r = httpx.post(
            f"{s.base_url}/api/v1/auth/register",
            json={"email": "dev@example.com", "password": "correct horse battery", "name": "D"},
        )
        assert r.status_code == 201, r.text
        token = r.json()["data"]["accessToken"]
        # New connections spread over both workers: each one verifies the other's tokens.
        assert {me(s.base_url, token) for _ in range(20)} == {200}
    assert "development_server_exposed" in s.log.read_text()
    with Server(url, workers=1, JWT_SECRET="", ENVIRONMENT="development") as again:
        assert me(again.base_url, token) == 200  # the secret outlived the restart
    assert secret_file.read_text().strip() == secret
