"""Mail reaches a real SMTP server (aiosmtpd in this process) through the outbox: a booking's
confirmation with its QR codes and calendar entry, a receipt, cancellations, an event's
cancellation once per holder; a server that refuses is retried and never fails a booking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest
from icalendar import Calendar

from core.storage.records import Mail
from modules.notifications.render import qr_png
from modules.notifications.sender import MAIL_FAILED, MAIL_SENT
from tests.support.accounts import Account
from tests.support.api import Api, make_settings, running_api
from tests.support.smtp import Received, SmtpServer

FAST = {"mail_poll_seconds": 0.05, "mail_retry_base_seconds": 0.05, "mail_retry_max_seconds": 0.1}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(login=("mailer", "s3cret-smtp-pass")) as server:
        yield server


@pytest.fixture
async def api(database_url: str, smtp: SmtpServer) -> AsyncIterator[Api]:
    settings = make_settings(database_url, smtp_url=smtp.url(), **FAST)
    async with running_api(settings) as running:
        yield running


def to(address: str) -> Any:
    return lambda got: any(r.envelope_to == [address] for r in got)


def parts(message: EmailMessage) -> dict[str, list[EmailMessage]]:
    found: dict[str, list[EmailMessage]] = {}
    for part in message.walk():
        found.setdefault(part.get_content_type(), []).append(part)  # type: ignore[arg-type]
    return found


async def mail_to(api: Api, who: Account, status: str) -> list[Mail]:
    found = await api.ctx.storage.mail.find(status=status, before_id=None, limit=200)
    return [m for m in found if m.to == who.email and m.template != "verify_email"]


async def one_to(smtp: SmtpServer, who: Account, subject_start: str) -> EmailMessage:
    got = await smtp.wait_until(
        lambda got: any(
            r.envelope_to == [who.email] and str(r.message["Subject"]).startswith(subject_start)
            for r in got
        )
    )
    [message] = [
        r.message
        for r in got
        if r.envelope_to == [who.email] and str(r.message["Subject"]).startswith(subject_start)
    ]
    return message


async def test_a_booking_confirmation_carries_qr_codes_and_a_calendar_entry(
    api: Api, smtp: SmtpServer
) -> None:
    sent_before = MAIL_SENT.labels("booking_confirmed")._value.get()
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, venue="Blue <Hall> & Co")
    booking = (await api.book(buyer, event["id"], 3)).json()["data"]
    message = await one_to(smtp, buyer, "Your tickets")
    assert message["Message-ID"].endswith("@ticketboss.localhost>")
    found = parts(message)
    [text], [html] = found["text/plain"], found["text/html"]
    assert booking["ticketNumber"] in text.get_content() and "75.00 USD" in text.get_content()
    assert "Blue &lt;Hall&gt; &amp; Co" in html.get_content()  # autoescaped
    qrs = found["image/png"]
    assert len(qrs) == 3 and all(q["Content-ID"] for q in qrs)
    for qr in qrs:
        assert f"cid:{qr['Content-ID'].strip('<>')}" in html.get_content()
    r = await api.client.get(f"/api/v1/bookings/{booking['id']}/tickets", headers=buyer.headers)
    signed = [qr_png(t["qr"]) for t in r.json()["data"]]  # the tickets' JWS, not a label
    assert [q.get_content() for q in qrs] == signed
    [ics] = found["text/calendar"]
    assert ics.get_filename() == "event.ics"
    [vevent] = Calendar.from_ical(ics.get_content()).walk("VEVENT")
    assert str(vevent["UID"]) == f"{event['id']}.{booking['id']}@ticketboss.localhost"
    assert vevent["LOCATION"] == "Blue <Hall> & Co"
    starts = datetime.fromisoformat(event["startsAt"]).replace(microsecond=0)
    assert vevent.decoded("DTSTART") == starts  # RFC 5545 counts whole seconds
    # at least: the storage is shared with other tests, whose rows this app's sender may send
    assert MAIL_SENT.labels("booking_confirmed")._value.get() >= sent_before + 1
    [mail] = await mail_to(api, buyer, "succeeded")
    assert message["Message-ID"] == f"<{mail.id}@ticketboss.localhost>" and mail.attempts == 1


async def test_a_hold_mails_when_confirmed_and_a_cancellation_is_told(
    api: Api, smtp: SmtpServer
) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    hold = (await api.book(buyer, event["id"], 1, hold=True)).json()["data"]
    r = await api.client.post(f"/api/v1/bookings/{hold['id']}/confirm", headers=buyer.headers)
    assert r.status_code == 200, r.text
    await one_to(smtp, buyer, "Your tickets")
    r = await api.client.patch(f"/api/v1/bookings/{hold['id']}/cancel", headers=buyer.headers)
    assert r.status_code == 200, r.text
    cancelled = await one_to(smtp, buyer, "Booking cancelled")
    assert hold["ticketNumber"] in cancelled.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert not parts(cancelled).get("image/png")


async def test_an_order_gets_one_receipt_with_its_prices(api: Api, smtp: SmtpServer) -> None:
    organizer, buyer = await api.user("organizer"), await api.user()
    tiers = [
        {"code": "VIP", "name": "VIP", "priceCents": 10000, "capacity": 10},
        {"code": "GA", "name": "GA", "priceCents": 2500, "capacity": 10},
    ]
    event = await api.event(organizer, tiers=tiers)
    body = {
        "eventId": event["id"],
        "items": [{"tier": "VIP", "quantity": 1}, {"tier": "GA", "quantity": 2}],
    }
    r = await api.client.post(
        "/api/v1/orders", json=body, headers=buyer.headers | {"Idempotency-Key": "o-1"}
    )
    assert r.status_code == 201, r.text
    receipt = await one_to(smtp, buyer, "Your order")
    text = receipt.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "100.00 USD" in text and "50.00 USD" in text and "Total: 150.00 USD" in text
    assert len(parts(receipt)["image/png"]) == 3
    await asyncio.sleep(0.3)  # nothing else comes: no per-booking confirmation besides it
    assert [r.envelope_to for r in smtp.received].count([buyer.email]) == 1


async def test_an_event_cancellation_reaches_every_holder_once(api: Api, smtp: SmtpServer) -> None:
    organizer = await api.user("organizer")
    buyers = [await api.user() for _ in range(3)]
    event = await api.event(organizer)
    for buyer in buyers:
        assert (await api.book(buyer, event["id"], 1)).status_code == 201
    assert (await api.book(buyers[0], event["id"], 2)).status_code == 201
    mine = {b.email for b in buyers}

    def to_buyers(got: list[Received]) -> list[Received]:
        """Another test's mail left in the shared outbox may reach this server too."""
        return [r for r in got if r.envelope_to[0] in mine]

    await smtp.wait_until(lambda got: len(to_buyers(got)) == 4)
    r = await api.client.post(f"/api/v1/events/{event['id']}/cancel", headers=organizer.headers)
    assert r.status_code == 200, r.text
    got = to_buyers(await smtp.wait_until(lambda got: len(to_buyers(got)) >= 7))
    await asyncio.sleep(0.3)
    received = to_buyers(smtp.received)
    cancelled = [r for r in received if str(r.message["Subject"]).startswith("Cancelled")]
    assert sorted(r.envelope_to[0] for r in cancelled) == sorted(mine)
    assert len(received) == len(got) == 7  # no booking_cancelled besides
    first = cancelled[[r.envelope_to[0] for r in cancelled].index(buyers[0].email)]
    assert first.message.get_body(("plain",)).get_content().count("TB-") == 2  # type: ignore[union-attr]


async def test_a_refusing_server_is_retried_and_the_booking_stands(
    api: Api, smtp: SmtpServer
) -> None:
    failed_before = MAIL_FAILED.labels("false")._value.get()
    smtp.handler.refuse = "451 4.3.0 try again later"
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    assert (await api.book(buyer, event["id"], 1)).status_code == 201
    async with asyncio.timeout(20):
        while not (pending := await mail_to(api, buyer, "pending")) or pending[0].attempts < 2:
            await asyncio.sleep(0.02)
    [pending_mail] = pending
    assert pending_mail.last_error == "SMTP 451"
    assert MAIL_FAILED.labels("false")._value.get() >= failed_before + 2
    smtp.handler.refuse = None
    await smtp.wait_until(to(buyer.email))
    [got] = [r for r in smtp.received if r.envelope_to == [buyer.email]]
    assert got.message_id == f"<{pending_mail.id}@ticketboss.localhost>"


async def test_a_permanent_refusal_fails_the_mail_without_retrying(
    api: Api, smtp: SmtpServer
) -> None:
    smtp.handler.refuse = "550 5.1.1 no such user"
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer)
    assert (await api.book(buyer, event["id"], 1)).status_code == 201
    async with asyncio.timeout(20):
        while not (failed := await mail_to(api, buyer, "failed")):
            await asyncio.sleep(0.05)
    assert failed[0].attempts == 1 and failed[0].last_error == "SMTP 550"
    await asyncio.sleep(0.3)
    [still] = await mail_to(api, buyer, "failed")
    assert still.attempts == 1  # never tried again
