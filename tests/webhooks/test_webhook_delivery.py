"""Deliveries reach a real receiver signed (Standard Webhooks), in order per booking, retried
after failures with the same webhook-id, and a 410 disables the webhook."""

from __future__ import annotations

from typing import Any

from tests.support.accounts import Account, PartnerAccount
from tests.support.api import Api
from tests.support.receiver import Receiver


async def subscribe(
    api: Api, who: Account | PartnerAccount, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    r = await api.client.post(
        "/api/v1/webhooks", json={"url": url, "events": events or ["*"]}, headers=who.headers
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def test_a_booking_arrives_signed(hooks: Api) -> None:
    organizer, buyer = await hooks.user("organizer"), await hooks.user()
    async with Receiver() as receiver:
        hook = await subscribe(hooks, organizer, receiver.url, ["booking.created"])
        assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
        event = await hooks.event(organizer)
        booking = (await hooks.book(buyer, event["id"], 2)).json()["data"]
        [got] = await receiver.wait_until(lambda r: len(r) >= 1)
    body = got.verify(hook["secret"])
    assert body["type"] == "booking.created" and body["timestamp"].endswith("Z")
    assert body["data"]["bookingId"] == booking["id"]
    assert body["data"]["data"]["quantity"] == 2 and body["data"]["eventId"] == event["id"]
    assert got.id.startswith("msg_") and got.path == "/hooks/in"
    assert got.headers["webhook-signature"].startswith("v1,")
    r = await hooks.client.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries", headers=organizer.headers
    )
    [delivery] = r.json()["data"]
    assert delivery["id"] == got.id and delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1 and delivery["lastStatusCode"] == 200
    assert delivery["lastLatencyMs"] is not None and delivery["nextAttemptAt"] is None
    assert (
        "secret"
        not in (
            await hooks.client.get(f"/api/v1/webhooks/{hook['id']}", headers=organizer.headers)
        ).json()["data"]
    )
