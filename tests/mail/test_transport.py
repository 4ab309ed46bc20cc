"""The transport on its own (a real SMTP server with a login, a closed port, a refusal), the
embedded mailbox in MAIL_DIR and /dev/mail, and logs that name no secret and no address."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import pytest

from core.mail import (
    DirectoryTransport,
    MailFailed,
    SmtpTransport,
    mailbox,
    parse_smtp_url,
    stored_message,
)
from tests.support.api import make_settings, running_api
from tests.support.mailbox import newest
from tests.support.services import free_port
from tests.support.smtp import SmtpServer

SMTP_PASSWORD = "pa55-w0rd-never-logged"


def a_message(message_id: str = "<m1@ticketboss.localhost>") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = "TicketBoss <no-reply@ticketboss.localhost>", "ada@example.com"
    message["Subject"], message["Message-ID"] = "Hello", message_id
    message.set_content("Hello Ada")
    return message


def test_smtp_urls() -> None:
    plain = parse_smtp_url("smtp://us%40er:p%3Ass@mail.example.com")
    assert (plain.host, plain.port, plain.tls) == ("mail.example.com", 587, False)
    assert (plain.username, plain.password) == ("us@er", "p:ss")
    assert parse_smtp_url("smtps://mail.example.com").port == 465
    with pytest.raises(ValueError):
        parse_smtp_url("http://mail.example.com")
    with pytest.raises(ValueError, match="SMTP_URL"):
        make_settings("sqlite://", smtp_url="mail.example.com:25")


async def test_smtp_with_a_login_and_its_refusals() -> None:
    with SmtpServer(login=("mailer", SMTP_PASSWORD)) as smtp:
        await SmtpTransport(smtp.url(), timeout=5).send(a_message())
        [got] = smtp.received
        assert (
            got.envelope_to == ["ada@example.com"] and got.message_id == "<m1@ticketboss.localhost>"
        )
        smtp.handler.refuse = "550 5.1.1 no such user"
        with pytest.raises(MailFailed) as refused:
            await SmtpTransport(smtp.url(), timeout=5).send(a_message())
        assert refused.value.permanent and refused.value.reason == "SMTP 550"
        smtp.handler.refuse = "451 4.3.0 later"
        with pytest.raises(MailFailed) as later:
            await SmtpTransport(smtp.url(), timeout=5).send(a_message())
        assert not later.value.permanent and later.value.reason == "SMTP 451"
        assert len(smtp.received) == 1


async def test_a_closed_port_is_a_failure_to_retry() -> None:
    with pytest.raises(MailFailed) as down:
        await SmtpTransport(f"smtp://127.0.0.1:{free_port()}", timeout=2).send(a_message())
    assert not down.value.permanent


async def test_the_mailbox_keeps_one_file_per_message_id(tmp_path: Path) -> None:
    transport = DirectoryTransport(str(tmp_path / "mail"))
    await transport.send(a_message())
    await transport.send(a_message())  # sent again after a crash: still one message
    await transport.send(a_message("<m2@ticketboss.localhost>"))
    listed = mailbox(str(tmp_path / "mail"))
    assert sorted(m.name for m in listed) == [
        "m1_ticketboss.localhost.eml",
        "m2_ticketboss.localhost.eml",
    ]
    stored = stored_message(str(tmp_path / "mail"), "m1_ticketboss.localhost.eml")
    assert stored is not None and stored["To"] == "ada@example.com"
    assert stored_message(str(tmp_path / "mail"), "../ticketboss.db") is None


async def test_dev_mail_shows_the_embedded_mailbox(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'tb.db'}", mail_dir=str(tmp_path / "mail"), mail_poll_seconds=0.05
    )
    async with running_api(settings) as api:
        organizer, buyer = await api.user("organizer"), await api.user()
        event = await api.event(organizer, name="<script>x</script> Gala")
        booking = (await api.book(buyer, event["id"], 2)).json()["data"]
        await newest(settings.mail_dir, buyer.email, "Your tickets")
        page = await api.client.get("/dev/mail")
        assert page.status_code == 200 and buyer.email in page.text
        assert "<script>x" not in page.text and "&lt;script&gt;x" in page.text
        [stored] = [m for m in mailbox(settings.mail_dir) if m.subject.startswith("Your tickets")]
        one = await api.client.get(f"/dev/mail/{stored.name}")
        assert one.status_code == 200 and booking["ticketNumber"] in one.text
        assert "event.ics" in one.text
        raw = await api.client.get(f"/dev/mail/{stored.name}/raw")
        assert raw.headers["content-type"] == "message/rfc822" and b"text/calendar" in raw.content
        assert (await api.client.get("/dev/mail/nothing.eml")).status_code == 404
    production = make_settings(
        f"sqlite:///{tmp_path / 'tb.db'}",
        environment="production",
        jwt_secret="a-production-secret-of-at-least-32-bytes",
        mail_dir=str(tmp_path / "mail"),
    )
    async with running_api(production) as api:
        assert (await api.client.get("/dev/mail")).status_code == 404


async def test_logs_name_no_smtp_password_and_no_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SmtpServer(login=("mailer", SMTP_PASSWORD)) as smtp:
        smtp.handler.refuse = "451 4.3.0 later"
        settings = make_settings(
            f"sqlite:///{tmp_path / 'tb.db'}",
            smtp_url=smtp.url(),
            log_level="INFO",
            mail_poll_seconds=0.05,
            mail_retry_base_seconds=0.05,
            mail_retry_max_seconds=0.1,
        )
        async with running_api(settings) as api:
            organizer, buyer = await api.user("organizer"), await api.user()
            event = await api.event(organizer)
            assert (await api.book(buyer, event["id"], 1)).status_code == 201
            async with asyncio.timeout(20):
                while smtp.handler.refused < 2:
                    await asyncio.sleep(0.02)
            smtp.handler.refuse = None
            await smtp.wait_until(lambda got: len(got) == 1)
            await asyncio.sleep(0.2)
    logs = capsys.readouterr().err
    assert "mail_attempt_failed" in logs and "mail_sent" in logs
    assert SMTP_PASSWORD not in logs and buyer.email not in logs
    assert f"{buyer.email[0]}***@example.com" in logs
