"""Who receives what: a partner its own bookings' changes, an organizer its events' and their
bookings', an admin everything; nobody another party's data."""

from __future__ import annotations

from core import clock
from tests.support.api import Api
from tests.support.receiver import Receiver
from tests.webhooks.test_webhook_delivery import deliveries, subscribe


async def test_each_owner_receives_only_what_it_may_see(hooks: Api) -> None:
    admin = await hooks.user("admin")
    organizer, rival = await hooks.user("organizer"), await hooks.user("organizer")
    partner, other_partner = await hooks.partner(admin), await hooks.partner(admin)
    buyer = await hooks.user()
    async with (
        Receiver() as to_partner,
        Receiver() as to_other_partner,
        Receiver() as to_organizer,
        Receiver() as to_rival,
        Receiver() as to_admin,
    ):
        hooks_of = {
            "partner": (partner, await subscribe(hooks, partner, to_partner.url)),
            "other": (other_partner, await subscribe(hooks, other_partner, to_other_partner.url)),
            "organizer": (organizer, await subscribe(hooks, organizer, to_organizer.url)),
            "rival": (rival, await subscribe(hooks, rival, to_rival.url)),
        }
        await subscribe(hooks, admin, to_admin.url)
        event = await hooks.event(organizer)
        by_partner = (await hooks.book(partner, event["id"], 2)).json()["data"]
        by_buyer = (await hooks.book(buyer, event["id"], 1)).json()["data"]
        await to_admin.wait_until(
            lambda r: any(x.json["data"].get("bookingId") == by_buyer["id"] for x in r)
        )
        await to_organizer.wait_until(lambda r: len(r) >= 4)
        await to_partner.wait_until(lambda r: len(r) >= 1)
        for name in ("other", "rival"):
            who, hook = hooks_of[name]
            assert await deliveries(hooks, who, hook) == [], name
    # In order per subject (the event, each booking); subjects interleave freely.
    assert sorted(r.json["type"] for r in to_organizer.received) == [
        "booking.created",
        "booking.created",
        "event.created",
        "event.published",
    ]
    event_changes = [r.json["type"] for r in to_organizer.received if r.json["type"][:5] == "event"]
    assert event_changes == ["event.created", "event.published"]
    [mine] = to_partner.received
    assert mine.json["data"]["bookingId"] == by_partner["id"]
    assert mine.verify(hooks_of["partner"][1]["secret"])["type"] == "booking.created"
    assert to_other_partner.received == [] and to_rival.received == []
    admin_saw = {r.json["data"].get("bookingId") for r in to_admin.received}
    assert {by_partner["id"], by_buyer["id"]} <= admin_saw


async def test_only_partners_organizers_and_admins_have_webhooks(sqlite_hooks: Api) -> None:
    buyer = await sqlite_hooks.user()
    r = await sqlite_hooks.client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/x", "events": ["*"]},
        headers=buyer.headers,
    )
    assert r.status_code == 403 and r.json()["code"] == "WEBHOOKS_NOT_ALLOWED"


async def test_a_demoted_organizer_receives_nothing_more(sqlite_hooks: Api) -> None:
    api = sqlite_hooks
    organizer, admin, buyer = await api.user("organizer"), await api.user("admin"), await api.user()
    async with Receiver() as to_organizer, Receiver() as witness:
        hook = await subscribe(api, organizer, to_organizer.url, ["booking.created"])
        await subscribe(api, admin, witness.url, ["booking.created"])
        event = await api.event(organizer)
        await api.ctx.storage.users.set_role(organizer.id, "user", clock.now())
        booked = (await api.book(buyer, event["id"])).json()["data"]
        await witness.wait_until(
            lambda r: any(x.json["data"]["bookingId"] == booked["id"] for x in r)
        )
    assert to_organizer.received == []
    assert (
        hook["id"]
        and await api.ctx.storage.webhooks.deliveries(hook["id"], before_id=None, limit=10) == []
    )
