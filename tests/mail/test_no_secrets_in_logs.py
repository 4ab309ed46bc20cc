"""Nothing secret reaches the logs: every account flow that mails something (register, a
wrong and a right code, resend, forgot, a wrong and a right reset, a change of address, a
failed login) runs at DEBUG through a real SMTP server with a login, and the captured logs are
searched for every code, reset token, password, the SMTP password and every full address."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.support.api import PASSWORD, make_settings, running_api
from tests.support.smtp import Received, SmtpServer

SMTP_PASSWORD = "smtp-secret-never-logged-42"
NEW_PASSWORD = "a reset passphrase never logged"


def body(received: Received) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def arrived(smtp: SmtpServer, to: str, *, codes: bool, after: int = 0) -> Received:
    async with asyncio.timeout(20):
        while True:
            with smtp.handler.lock:
                box = smtp.handler.codes if codes else smtp.handler.received
                mine = [r for r in box if r.envelope_to == [to]]
            if len(mine) > after:
                return mine[-1]
            await asyncio.sleep(0.05)


def code_in(received: Received) -> str:
    found = re.search(r"^\s+([0-9]{6})\s*$", body(received), re.MULTILINE)
    assert found
    return found.group(1)


def appears(secret: str, text: str) -> bool:
    """As a word of its own (a code's six digits also occur inside timestamps and ids)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


@pytest.mark.sqlite
async def test_the_account_flows_log_no_secret_and_no_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SmtpServer(login=("mailer", SMTP_PASSWORD)) as smtp:
        settings = make_settings(
            f"sqlite:///{tmp_path / 'tb.db'}",
            smtp_url=smtp.url(),
            log_level="DEBUG",
            mail_poll_seconds=0.05,
        )
        async with running_api(settings) as api:
            ada = await api.user()
            client = api.client
            first = code_in(await arrived(smtp, ada.email, codes=True))
            wrong = f"{(int(first) + 1) % 1_000_000:06d}"
            await client.post("/api/v1/auth/verify-email", json={"email": ada.email, "code": wrong})
            await client.post("/api/v1/auth/resend-verification", json={"email": ada.email})
            second = code_in(await arrived(smtp, ada.email, codes=True, after=1))
            r = await client.post(
                "/api/v1/auth/verify-email", json={"email": ada.email, "code": second}
            )
            assert r.status_code == 200

            await client.post("/api/v1/auth/forgot-password", json={"email": ada.email})
            link = re.search(
                r"#token=([A-Za-z0-9_-]+)", body(await arrived(smtp, ada.email, codes=False))
            )
            assert link
            token = link.group(1)
            await client.post(
                "/api/v1/auth/reset-password", json={"token": token[::-1], "password": NEW_PASSWORD}
            )
            r = await client.post(
                "/api/v1/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
            )
            assert r.status_code == 204
            await client.post(
                "/api/v1/auth/login", json={"email": ada.email, "password": "not the password"}
            )
            login = await client.post(
                "/api/v1/auth/login", json={"email": ada.email, "password": NEW_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
            new_email = f"moved-{ada.email}"
            r = await client.post(
                "/api/v1/auth/change-email",
                json={"currentPassword": NEW_PASSWORD, "newEmail": new_email},
                headers=headers,
            )
            assert r.status_code == 202
            move = code_in(await arrived(smtp, new_email, codes=True))
            r = await client.post(
                "/api/v1/auth/verify-email", json={"email": new_email, "code": move}
            )
            assert r.status_code == 200
            await arrived(smtp, ada.email, codes=False, after=1)  # the old address is told
            await asyncio.sleep(0.2)  # the sender's last log lines
    logs = capsys.readouterr()
    text = logs.out + logs.err
    assert "mail_sent" in text and "account_login_failed" in text  # the logs were captured
    secrets = {
        "code": [first, second, move],
        "reset token": [token],
        "password": [PASSWORD, NEW_PASSWORD, SMTP_PASSWORD],
        "address": [ada.email, new_email],
    }
    leaked = {kind: [s for s in found if appears(s, text)] for kind, found in secrets.items()}
    assert leaked == {kind: [] for kind in secrets}
    assert f"{ada.email[0]}***@example.com" in text  # addresses appear masked
