"""Forgotten passwords: a single-use link by mail (the embedded mailbox), 202 whether or not
the account exists, a reset that ends every session; unknown, used, replaced and expired
tokens are 400 with a code and change nothing; the token never reaches the logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.mail import mailbox
from tests.support.api import PASSWORD, Api, make_settings, running_api
from tests.support.mailbox import RESET, reset_token

NEW = "a brand new passphrase 42"


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        database_url, mail_dir=str(tmp_path / "mail"), mail_poll_seconds=0.05, log_level="INFO"
    )
    async with running_api(settings) as running:
        yield running


async def reset_link(api: Api, email: str, after: int = 0) -> str:
    """The token of the newest reset mail to `email`, once there are more than `after`."""
    return await reset_token(api.ctx.settings.mail_dir, email, after)


async def forgot(api: Api, email: str) -> None:
    r = await api.client.post("/api/v1/auth/forgot-password", json={"email": email})
    assert r.status_code == 202 and r.content == b""


async def reset(api: Api, token: str, password: str = NEW) -> tuple[int, str | None]:
    r = await api.client.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": password}
    )
    return r.status_code, (r.json()["code"] if r.content else None)


async def test_a_reset_link_works_once_and_ends_every_session(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    ada = await api.user()
    await forgot(api, ada.email)
    token = await reset_link(api, ada.email)
    assert await reset(api, token) == (204, None)
    assert (await api.client.get("/api/v1/auth/me", headers=ada.headers)).status_code == 401
    r = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": ada.refresh})
    assert r.status_code == 401
    login = {"email": ada.email, "password": NEW}
    assert (await api.client.post("/api/v1/auth/login", json=login)).status_code == 200
    assert await reset(api, token, "yet another passphrase 7") == (400, "RESET_TOKEN_INVALID")
    assert (await api.client.post("/api/v1/auth/login", json=login)).status_code == 200
    logs = capsys.readouterr().err
    assert "mail_sent" in logs and token not in logs and ada.email not in logs


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(api: Api) -> None:
    await forgot(api, "nobody-here@example.com")
    assert (await reset(api, "not-a-token-anyone-issued"))[1] == "RESET_TOKEN_INVALID"
    ada = await api.user()
    await forgot(api, ada.email)
    await reset_link(api, ada.email)
    resets = [m.to for m in mailbox(api.ctx.settings.mail_dir) if m.subject == RESET]
    assert resets == [ada.email]


async def test_a_newer_link_replaces_the_older_one(api: Api) -> None:
    ada = await api.user()
    await forgot(api, ada.email)
    first = await reset_link(api, ada.email)
    await forgot(api, ada.email)
    second = await reset_link(api, ada.email, after=1)
    assert first != second
    assert await reset(api, first) == (400, "RESET_TOKEN_INVALID")
    login = {"email": ada.email, "password": PASSWORD}
    assert (await api.client.post("/api/v1/auth/login", json=login)).status_code == 200
    assert await reset(api, second) == (204, None)


@pytest.mark.sqlite
async def test_an_expired_link_changes_nothing(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'tb.db'}",
        mail_dir=str(tmp_path / "mail"),
        mail_poll_seconds=0.05,
        reset_token_ttl_seconds=1,
    )
    async with running_api(settings) as api:
        ada = await api.user()
        await forgot(api, ada.email)
        token = await reset_link(api, ada.email)
        await asyncio.sleep(1.1)
        assert await reset(api, token) == (400, "RESET_TOKEN_EXPIRED")
        assert await reset(api, token) == (400, "RESET_TOKEN_INVALID")  # gone now
        login = {"email": ada.email, "password": PASSWORD}
        assert (await api.client.post("/api/v1/auth/login", json=login)).status_code == 200
        assert (await api.client.get("/api/v1/auth/me", headers=ada.headers)).status_code == 200
