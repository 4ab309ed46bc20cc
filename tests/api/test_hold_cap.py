"""The hold cap through HTTP: one buyer holds at most MAX_PENDING_PER_USER unconfirmed seats
per event, counted atomically; partners, who sell to many customers, are not capped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, make_settings, running_api

CAP = 4


@pytest.fixture
async def capped(database_url: str) -> AsyncIterator[Api]:
    async with running_api(make_settings(database_url, max_pending_per_user=CAP)) as api:
        yield api


async def test_holds_beyond_the_cap_are_409(capped: Api) -> None:
    organizer, buyer = await capped.user("organizer"), await capped.user()
    event = await capped.event(organizer)
    first = await capped.book(buyer, event["id"], 3, hold=True)
    assert first.status_code == 201, first.text
    over = await capped.book(buyer, event["id"], 2, hold=True)
    assert over.status_code == 409 and over.json()["code"] == "HOLD_LIMIT_EXCEEDED", over.text
    assert (await capped.book(buyer, event["id"], 1, hold=True)).status_code == 201
    alone = await capped.book(buyer, event["id"], CAP + 1, hold=True)
    assert alone.status_code == 409 and alone.json()["code"] == "HOLD_LIMIT_EXCEEDED"

    # a confirmation or a cancellation gives the allowance back; a purchase never needs it
    hold_id = first.json()["data"]["id"]
    r = await capped.client.post(f"/api/v1/bookings/{hold_id}/confirm", headers=buyer.headers)
    assert r.status_code == 200, r.text
    assert (await capped.book(buyer, event["id"], 3, hold=True)).status_code == 201
    assert (await capped.book(buyer, event["id"], 8)).status_code == 201
    other = await capped.user()
    assert (await capped.book(other, event["id"], CAP, hold=True)).status_code == 201


async def test_concurrent_holds_never_pass_the_cap(capped: Api) -> None:
    organizer, buyer = await capped.user("organizer"), await capped.user()
    event = await capped.event(organizer)
    answers = await asyncio.gather(
        *(capped.book(buyer, event["id"], 1, hold=True) for _ in range(20))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * CAP + [409] * (20 - CAP), [r.text for r in answers]
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"HOLD_LIMIT_EXCEEDED"}


async def test_partners_are_not_capped(capped: Api) -> None:
    organizer = await capped.user("organizer")
    partner = await capped.partner()
    event = await capped.event(organizer, maxPerUser=2)
    for _ in range(3):
        r = await capped.book(partner, event["id"], CAP, hold=True, key=uuid.uuid4().hex)
        assert r.status_code == 201, r.text
