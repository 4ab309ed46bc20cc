"""The audit trail: failed and refused sign-ins and refresh-token reuse, in the structured log
and in the activity log, without secrets and with the email masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.accounts import Account
from tests.support.api import Api, make_settings, running_api


async def entries(api: Api, admin: Account, type: str, since: datetime) -> list[dict[str, Any]]:
    """This test's entries of `type` (the database is shared with other tests)."""
    query = {"type": type, "from": since.isoformat()}
    r = await api.client.get("/api/v1/activity", params=query, headers=admin.headers)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


def log_events(text: str) -> list[dict[str, Any]]:
    lines = (line for line in text.splitlines() if line.startswith("{"))
    return [json.loads(line) for line in lines]


async def test_failed_logins_and_refresh_reuse_are_recorded(
    api: Api, capfd: pytest.CaptureFixture[str]
) -> None:
    admin, victim = await api.user("admin"), await api.user()
    since = datetime.now(UTC)
    wrong = {"email": victim.email, "password": "a wrong guess of it"}
    assert (await api.client.post("/api/v1/auth/login", json=wrong)).status_code == 401
    [failed] = await entries(api, admin, "account.login_failed", since)
    masked = victim.email[0] + "***@example.com"
    assert failed["data"]["email"] == masked and failed["data"]["ip"] == "203.0.113.7"
    await api.client.post("/api/v1/auth/refresh", json={"refreshToken": victim.refresh})
    await api.client.post("/api/v1/auth/refresh", json={"refreshToken": victim.refresh})
    [reused] = await entries(api, admin, "account.refresh_reused", since)
    assert reused["data"]["accountId"] == victim.id
    out = capfd.readouterr()
    logged = {e["event"]: e for e in log_events(out.out + out.err)}
    assert logged["account_login_failed"]["email"] == masked
    assert logged["account_refresh_reused"]["account_id"] == victim.id
    for secret in (victim.email, wrong["password"], victim.refresh):
        assert secret not in out.out + out.err
        assert secret not in json.dumps([failed, reused])


async def test_refused_logins_are_recorded(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url,
        rate_limit_enabled=True,
        rate_limit_login_account_ip="1/minute",
        rate_limit_login_ip="100/minute",
    )
    async with running_api(settings) as api:
        admin = await api.user("admin")
        since = datetime.now(UTC)
        wrong = {"email": "target@example.com", "password": "a wrong guess of it"}
        codes = [
            (await api.client.post("/api/v1/auth/login", json=wrong)).status_code for _ in range(4)
        ]
        assert codes == [401, 429, 429, 429]  # one entry per window: a flood cannot fill the log
        [refused] = await entries(api, admin, "account.login_refused", since)
        assert refused["data"]["email"] == "t***@example.com"
        assert int(refused["data"]["retryAfter"]) >= 1
