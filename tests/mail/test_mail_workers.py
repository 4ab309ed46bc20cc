"""Through the real server (`ticketboss serve --workers 2`) to a real SMTP server in this
process: every booking's mail reaches SMTP once while both workers send, and none is lost
when the whole server is killed (`kill -9`) while a message is on the wire."""

from __future__ import annotations

import asyncio
import collections
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.accounts import Account
from tests.support.races import account, hot_event
from tests.support.server import Server
from tests.support.smtp import SmtpServer

NORMAL, KILLED = 10, 16
"""Bookings (one mail each) made while nothing goes wrong, then around the kill."""


def server(database_url: str, smtp: SmtpServer) -> Server:
    return Server(
        database_url,
        workers=2,
        SMTP_URL=smtp.url(),
        SMTP_TIMEOUT_SECONDS="1",  # a killed sender's lease (2 × timeout + 10 s) ends soon
        MAIL_POLL_SECONDS="0.1",
        MAIL_RETRY_BASE_SECONDS="0.1",
        MAIL_RETRY_MAX_SECONDS="0.5",
    )


async def book(client: httpx.AsyncClient, buyer: Account, event_id: str) -> None:
    headers = buyer.headers | {"Idempotency-Key": uuid.uuid4().hex}
    body = {"eventId": event_id, "tier": "GA", "quantity": 1}
    r = await client.post("/api/v1/bookings", json=body, headers=headers)
    assert r.status_code == 201, r.text


def unique(smtp: SmtpServer) -> set[str]:
    return {r.message_id for r in smtp.received}


@pytest.mark.sqlite
async def test_each_mail_reaches_smtp_once_across_workers_and_none_is_lost_to_a_kill(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'ticketboss.db'}"
    tiers = [{"code": "GA", "name": "GA", "priceCents": 1000, "capacity": 100}]
    with SmtpServer(login=("mailer", "pass")) as smtp:
        with server(database_url, smtp) as first:
            async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
                organizer = await account(client, database_url, "organizer")
                buyers = [await account(client, database_url) for _ in range(2)]
                event_id = await hot_event(client, organizer, tiers)
                await asyncio.gather(
                    *(book(client, buyers[i % 2], event_id) for i in range(NORMAL))
                )
                await smtp.wait_until(lambda got: len(got) >= NORMAL)
                await asyncio.sleep(1.5)  # time for a second copy, if there were one
        normal = smtp.received
        assert len(normal) == len(unique(smtp)) == NORMAL  # once each, in normal operation

        smtp.handler.delay = 0.3  # every message is on the wire for a while
        killed = server(database_url, smtp).start()
        try:
            async with httpx.AsyncClient(base_url=killed.base_url, timeout=30) as client:
                await asyncio.gather(
                    *(book(client, buyers[i % 2], event_id) for i in range(KILLED))
                )
            await smtp.wait_until(lambda got: len(got) >= NORMAL + 2)
            await asyncio.sleep(0.15)  # mid-way through the next message's DATA
        finally:
            killed.kill()
        at_kill = len(smtp.received)
        assert at_kill < NORMAL + KILLED, "the kill came too late to interrupt anything"

        smtp.handler.delay = 0
        with server(database_url, smtp):
            await smtp.wait_until(lambda _: len(unique(smtp)) == NORMAL + KILLED, timeout=60)
            await asyncio.sleep(1.5)
        got = smtp.received
        copies = collections.Counter(r.message_id for r in got)
        duplicates = sum(n - 1 for n in copies.values())
        print(
            f"\nmail across a kill -9: expected {NORMAL + KILLED}, reached SMTP {len(got)} "
            f"({len(copies)} distinct Message-IDs, {duplicates} second copies; "
            f"{at_kill} had arrived when the server was killed)"
        )
        assert len(copies) == NORMAL + KILLED  # none lost
        assert duplicates <= 2  # only what was on the wire when the senders died
