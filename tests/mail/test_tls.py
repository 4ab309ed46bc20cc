"""The transport against a real local aiosmtpd over TLS (a self-signed certificate made in the
test): STARTTLS with a login, smtps:// from the first byte, an untrusted certificate refused;
and a server that is down: the booking stands, the mail waits (in /metrics and `ticketboss
mail`) and goes out once the server is back."""

from __future__ import annotations

import argparse
import asyncio
from email.message import EmailMessage
from pathlib import Path

import pytest

from core.mail import MailFailed, SmtpTransport
from modules.cli import cmd_mail
from tests.support.api import make_settings, running_api
from tests.support.services import free_port
from tests.support.smtp import SmtpServer
from tests.support.tls import Certificate, self_signed

LOGIN = ("mailer", "tls-only-pa55word")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


def a_message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = "TicketBoss <no-reply@ticketboss.localhost>", "ada@example.com"
    message["Subject"], message["Message-ID"] = "Hello", "<tls-1@ticketboss.localhost>"
    message.set_content("Hello Ada")
    return message


async def test_starttls_then_a_login(certificate: Certificate) -> None:
    tls = certificate.server_context()
    with SmtpServer(login=LOGIN, tls=tls, starttls=True) as smtp:
        trusted = SmtpTransport(smtp.url(), timeout=5, ca_file=str(certificate.cert_file))
        await trusted.send(a_message())
        [got] = smtp.received
        assert got.tls and got.envelope_to == ["ada@example.com"]
        with pytest.raises(MailFailed) as untrusted:  # the system's CAs do not know this one
            await SmtpTransport(smtp.url(), timeout=5).send(a_message())
        assert not untrusted.value.permanent
        wrong = f"smtp://{LOGIN[0]}:not-the-password@127.0.0.1:{smtp.port}"
        with pytest.raises(MailFailed):  # a wrong login is never a sent message
            await SmtpTransport(wrong, timeout=2, ca_file=str(certificate.cert_file)).send(
                a_message()
            )
        assert len(smtp.received) == 1


async def test_smtps_speaks_tls_from_the_first_byte(certificate: Certificate) -> None:
    tls = certificate.server_context()
    with SmtpServer(login=LOGIN, tls=tls, starttls=False) as smtp:
        transport = SmtpTransport(smtp.url("smtps"), timeout=5, ca_file=str(certificate.cert_file))
        await transport.send(a_message())
        [got] = smtp.received
        assert got.tls and got.message_id == "<tls-1@ticketboss.localhost>"
        plain = f"smtp://127.0.0.1:{smtp.port}"  # a plain client gets no SMTP greeting
        with pytest.raises(MailFailed):
            await SmtpTransport(plain, timeout=2).send(a_message())


@pytest.mark.sqlite
async def test_a_server_that_is_down_delays_the_mail_never_the_booking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    settings = make_settings(
        f"sqlite:///{tmp_path / 'tb.db'}",
        smtp_url=f"smtp://{LOGIN[0]}:{LOGIN[1]}@127.0.0.1:{port}",
        smtp_timeout_seconds=2,
        mail_poll_seconds=0.05,
        mail_retry_base_seconds=0.05,
        mail_retry_max_seconds=0.2,
        metrics_token="metrics-token-for-the-test",
    )
    async with running_api(settings) as api:
        organizer, buyer = await api.user("organizer"), await api.user()
        event = await api.event(organizer)
        booked = await api.book(buyer, event["id"], 1)
        assert booked.status_code == 201, booked.text

        async def waiting() -> list[str]:
            found = await api.ctx.storage.mail.find(status="pending", before_id=None, limit=50)
            return [m.id for m in found if m.template == "booking_confirmed" and m.attempts >= 2]

        async with asyncio.timeout(20):
            while not (ids := await waiting()):
                await asyncio.sleep(0.05)
        [mail_id] = ids
        metrics = await api.client.get(
            "/metrics", headers={"Authorization": "Bearer metrics-token-for-the-test"}
        )
        failed = [
            line
            for line in metrics.text.splitlines()
            if line.startswith('ticketboss_mail_attempts_failed_total{final="false"}')
        ]
        assert failed and float(failed[0].split()[-1]) >= 2
        capsys.readouterr()
        listing = argparse.Namespace(send=False, status="pending", limit=50)
        await asyncio.to_thread(cmd_mail, settings, listing)
        [row] = [line for line in capsys.readouterr().out.splitlines() if mail_id in line]
        assert "pending" in row and "booking_confirmed" in row
        assert "ConnectionRefusedError" in row or "SMTPConnectError" in row, row
        assert buyer.email not in row and f"{buyer.email[0]}***@example.com" in row

        with SmtpServer(login=LOGIN, port=port) as smtp:  # back: the retry delivers it
            [got] = await smtp.wait_until(lambda got: len(got) >= 1)
            assert got.message_id == f"<{mail_id}@ticketboss.localhost>"
            async with asyncio.timeout(10):  # the sender records it right after
                while (
                    sent := await api.ctx.storage.mail.get(mail_id)
                ) and sent.status != "succeeded":
                    await asyncio.sleep(0.05)
        assert sent is not None and sent.attempts >= 3
        r = await api.client.get(
            f"/api/v1/bookings/{booked.json()['data']['id']}", headers=buyer.headers
        )
        assert r.json()["data"]["status"] == "confirmed"
