"""Verified addresses: a 6-digit code mailed on registration (and on request), spent once,
limited in time and in tries; a wrong, expired, reused or other account's code is 400 with a
code and changes nothing. REQUIRE_VERIFIED_EMAIL keeps unverified accounts from buying; a
change of address needs the password and a code from the new address, and tells the old."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.accounts import Account
from tests.support.api import PASSWORD, Api, make_settings, running_api
from tests.support.mailbox import CODE, code, count, newest, text_of

FAST = {"mail_poll_seconds": 0.05, "log_level": "INFO"}
CHANGED = "Your TicketBoss address was changed"


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(database_url, mail_dir=str(tmp_path / "mail"), **FAST)
    async with running_api(settings) as running:
        yield running


@pytest.fixture
async def strict(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        sqlite_url, mail_dir=str(tmp_path / "mail"), require_verified_email=True, **FAST
    )
    async with running_api(settings) as running:
        yield running


def mail_dir(api: Api) -> str:
    return api.ctx.settings.mail_dir


async def verify(api: Api, email: str, digits: str) -> tuple[int, Any]:
    r = await api.client.post("/api/v1/auth/verify-email", json={"email": email, "code": digits})
    body = r.json()
    return r.status_code, body["data"] if r.status_code == 200 else body["code"]


async def verified(api: Api, who: Account) -> bool:
    r = await api.client.get("/api/v1/auth/me", headers=who.headers)
    assert r.status_code == 200, r.text
    return bool(r.json()["data"]["emailVerified"])


def other_than(digits: str) -> str:
    return f"{(int(digits) + 1) % 1_000_000:06d}"


async def test_the_mailed_code_verifies_the_address_once(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    ada, bob = await api.user(), await api.user()
    mine, bobs = await code(mail_dir(api), ada.email), await code(mail_dir(api), bob.email)
    assert not await verified(api, ada)
    assert await verify(api, ada.email, other_than(mine)) == (400, "VERIFICATION_CODE_INVALID")
    if bobs != mine:  # one chance in a million that they are the same
        assert await verify(api, ada.email, bobs) == (400, "VERIFICATION_CODE_INVALID")
    assert not await verified(api, ada) and not await verified(api, bob)
    status, user = await verify(api, ada.email, mine)
    assert status == 200 and user["emailVerified"] and user["email"] == ada.email
    assert await verified(api, ada) and not await verified(api, bob)
    assert await verify(api, ada.email, mine) == (400, "VERIFICATION_CODE_INVALID")  # used
    assert (await verify(api, bob.email, bobs))[0] == 200  # ada's tries did not spend bob's
    logs = capsys.readouterr().err
    assert "mail_sent" in logs and mine not in logs and ada.email not in logs


@pytest.mark.sqlite
async def test_a_code_survives_a_few_wrong_tries_only(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        sqlite_url, mail_dir=str(tmp_path / "mail"), email_code_max_attempts=3, **FAST
    )
    async with running_api(settings) as api:
        ada = await api.user()
        right = await code(mail_dir(api), ada.email)
        for _ in range(3):
            assert await verify(api, ada.email, other_than(right)) == (
                400,
                "VERIFICATION_CODE_INVALID",
            )
        assert await verify(api, ada.email, right) == (400, "VERIFICATION_ATTEMPTS_EXCEEDED")
        assert not await verified(api, ada)
        r = await api.client.post("/api/v1/auth/resend-verification", json={"email": ada.email})
        assert r.status_code == 202 and r.content == b""
        again = await code(mail_dir(api), ada.email, after=1)
        assert (await verify(api, ada.email, again))[0] == 200
        assert await verify(api, ada.email, right) == (400, "VERIFICATION_CODE_INVALID")


@pytest.mark.sqlite
async def test_an_expired_code_changes_nothing(
    strict: Api, advance_clock: Callable[[timedelta], None]
) -> None:
    ada = await strict.user()
    right = await code(mail_dir(strict), ada.email)
    advance_clock(timedelta(seconds=strict.ctx.settings.email_code_ttl_seconds + 1))
    assert await verify(strict, ada.email, right) == (400, "VERIFICATION_CODE_EXPIRED")
    assert not await verified(strict, ada)


@pytest.mark.sqlite
async def test_resend_answers_the_same_for_anyone_and_mails_only_the_unverified(
    strict: Api,
) -> None:
    ada = await strict.user()
    first = await code(mail_dir(strict), ada.email)
    for email in (ada.email, f"nobody-{uuid.uuid4().hex[:8]}@example.com"):
        r = await strict.client.post("/api/v1/auth/resend-verification", json={"email": email})
        assert r.status_code == 202 and r.content == b""
    second = await code(mail_dir(strict), ada.email, after=1)
    assert await verify(strict, ada.email, first) == (400, "VERIFICATION_CODE_INVALID")  # replaced
    assert (await verify(strict, ada.email, second))[0] == 200
    r = await strict.client.post("/api/v1/auth/resend-verification", json={"email": ada.email})
    assert r.status_code == 202
    other = await strict.user()  # a mail that comes after any the resend would have made
    await code(mail_dir(strict), other.email)
    assert count(mail_dir(strict), ada.email, CODE) == 2


@pytest.mark.sqlite
async def test_an_unverified_account_cannot_buy_when_verification_is_required(
    strict: Api,
) -> None:
    organizer, ada = await strict.user("organizer"), await strict.user()
    event = await strict.event(organizer)
    r = await strict.book(ada, event["id"], 1)
    assert r.status_code == 403 and r.json()["code"] == "EMAIL_NOT_VERIFIED"
    order = {"eventId": event["id"], "items": [{"tier": "GA", "quantity": 1}]}
    headers = ada.headers | {"Idempotency-Key": uuid.uuid4().hex}
    r = await strict.client.post("/api/v1/orders", json=order, headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "EMAIL_NOT_VERIFIED"
    availability = await strict.client.get(f"/api/v1/events/{event['id']}")
    assert availability.json()["data"]["tiers"][0]["available"] == 100
    assert (await verify(strict, ada.email, await code(mail_dir(strict), ada.email)))[0] == 200
    assert (await strict.book(ada, event["id"], 1)).status_code == 201


async def test_a_change_of_address_waits_for_the_new_address_code(api: Api) -> None:
    ada, bob = await api.user(), await api.user()
    new = f"ada-new-{uuid.uuid4().hex[:8]}@example.com"

    async def change(password: str, email: str) -> tuple[int, str | None]:
        r = await api.client.post(
            "/api/v1/auth/change-email",
            json={"currentPassword": password, "newEmail": email},
            headers=ada.headers,
        )
        return r.status_code, (r.json()["code"] if r.content else None)

    assert await change("not my password at all", new) == (401, "INVALID_CREDENTIALS")
    assert await change(PASSWORD, bob.email) == (409, "EMAIL_TAKEN")
    assert await change(PASSWORD, ada.email) == (400, "EMAIL_UNCHANGED")
    assert await change(PASSWORD, new) == (202, None)
    digits = await code(mail_dir(api), new)
    login = {"email": new, "password": PASSWORD}
    assert (await api.client.post("/api/v1/auth/login", json=login)).status_code == 401
    me = (await api.client.get("/api/v1/auth/me", headers=ada.headers)).json()["data"]
    assert me["email"] == ada.email  # not moved before the code comes back
    assert await verify(api, ada.email, digits) == (400, "VERIFICATION_CODE_INVALID")
    status, user = await verify(api, new, digits)
    assert status == 200 and user["email"] == new and user["emailVerified"]
    assert (await api.client.post("/api/v1/auth/login", json=login)).status_code == 200
    old = {"email": ada.email, "password": PASSWORD}
    assert (await api.client.post("/api/v1/auth/login", json=old)).status_code == 401
    notice = await newest(mail_dir(api), ada.email, CHANGED)
    assert new in text_of(notice)
    assert await verify(api, new, digits) == (400, "VERIFICATION_CODE_INVALID")


@pytest.mark.sqlite
async def test_verify_and_resend_are_limited_like_logins(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        sqlite_url,
        mail_dir=str(tmp_path / "mail"),
        rate_limit_enabled=True,
        rate_limit_login_account_ip="3/minute",
        **FAST,
    )
    async with running_api(settings) as api:
        ada = await api.user()
        right = await code(mail_dir(api), ada.email)
        answers = [(await verify(api, ada.email, other_than(right)))[0] for _ in range(4)]
        assert answers == [400, 400, 400, 429]
        assert (await verify(api, ada.email, right))[0] == 429  # refused before it is compared
        sent = [
            (
                await api.client.post("/api/v1/auth/resend-verification", json={"email": ada.email})
            ).status_code
            for _ in range(4)
        ]
        assert sent == [202, 202, 202, 429]
