"""Waiting lists and access codes through the HTTP API (the storage rules run per backend in
tests/contract/test_waitlist_storage.py; these are the routes' own answers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.storage.requests import ChangeQuery
from modules.notifications.outbox import MailFromChanges
from tests.support.accounts import Account
from tests.support.api import Api

TIERS = [
    {"code": "GA", "name": "General", "priceCents": 2000, "capacity": 2},
    {"code": "VIP", "name": "VIP", "priceCents": 10000, "capacity": 5, "hidden": True},
]


async def availability(api: Api, event_id: str) -> dict[str, Any]:
    r = await api.client.get(f"/api/v1/events/{event_id}/availability")
    return {t["code"]: t for t in r.json()["data"]["tiers"]}


async def join(api: Api, who: Account, event_id: str, quantity: int = 1, tier: str = "GA"):
    return await api.client.post(
        f"/api/v1/events/{event_id}/waitlist",
        json={"tier": tier, "quantity": quantity},
        headers=who.headers,
    )


async def test_join_offer_book_through_the_api(sqlite_api: Api) -> None:
    api = sqlite_api
    organizer = await api.user("organizer")
    buyers = [await api.user() for _ in range(2)]
    fans = [await api.user() for _ in range(2)]
    event = await api.event(organizer, tiers=TIERS, maxPerUser=4)
    early = await join(api, fans[0], event["id"])
    assert early.status_code == 409 and early.json()["code"] == "SEATS_AVAILABLE"
    assert early.json()["available"] == 2
    booked = [(await api.book(b, event["id"])).json()["data"] for b in buyers]
    over = await join(api, fans[0], event["id"], quantity=5)
    assert over.status_code == 409 and over.json()["code"] == "PER_USER_LIMIT_EXCEEDED"
    first = await join(api, fans[0], event["id"])
    assert first.status_code == 201, first.text
    entry = first.json()["data"]
    assert {k: entry[k] for k in ("tier", "quantity", "position", "status")} == {
        "tier": "GA",
        "quantity": 1,
        "position": 1,
        "status": "waiting",
    }
    twice = await join(api, fans[0], event["id"])
    assert twice.status_code == 409 and twice.json()["code"] == "ALREADY_ON_WAITLIST"
    second = (await join(api, fans[1], event["id"])).json()["data"]
    assert second["position"] == 2
    cancel = await api.client.patch(
        f"/api/v1/bookings/{booked[0]['id']}/cancel", headers=buyers[0].headers
    )
    assert cancel.status_code == 200
    assert (await availability(api, event["id"]))["GA"] == {
        "code": "GA",
        "capacity": 2,
        "available": 0,
        "pending": 0,
        "confirmed": 1,
        "blocked": 1,
    }
    mine = (await api.client.get("/api/v1/waitlist", headers=fans[0].headers)).json()["data"]
    assert [(e["id"], e["status"]) for e in mine] == [(entry["id"], "offered")]
    assert mine[0]["offerExpiresAt"]
    stolen = await api.book(fans[1], event["id"], waitlistEntryId=entry["id"])
    assert stolen.status_code == 404 and stolen.json()["code"] == "WAITLIST_ENTRY_NOT_FOUND"
    plain = await api.book(buyers[0], event["id"])
    assert plain.status_code == 409 and plain.json()["code"] == "INSUFFICIENT_TICKETS"
    wrong = await api.book(fans[0], event["id"], quantity=2, waitlistEntryId=entry["id"])
    assert wrong.status_code == 409 and wrong.json()["code"] == "WAITLIST_OFFER_NOT_USABLE"
    assert wrong.json()["reason"] == "offer_quantity" and wrong.json()["quantity"] == 1
    made = await api.book(fans[0], event["id"], waitlistEntryId=entry["id"])
    assert made.status_code == 201, made.text
    listed = await api.client.get(
        f"/api/v1/events/{event['id']}/waitlist", headers=organizer.headers
    )
    assert [(e["ownerId"], e["status"], e["position"]) for e in listed.json()["data"]] == [
        (fans[1].id, "waiting", 1)
    ]
    stranger = await api.client.get(
        f"/api/v1/events/{event['id']}/waitlist", headers=fans[1].headers
    )
    assert stranger.status_code == 403
    left = await api.client.delete(f"/api/v1/waitlist/{second['id']}", headers=fans[1].headers)
    assert left.status_code == 200 and left.json()["data"]["status"] == "left"
    gone = await api.client.delete(f"/api/v1/waitlist/{second['id']}", headers=fans[1].headers)
    assert gone.status_code == 404
    offered = await api.ctx.storage.changes.find(
        ChangeQuery(event_id=event["id"], type="waitlist.offered")
    )
    assert [c.subject_id for c in offered] == [entry["id"]]
    mails = await MailFromChanges(api.ctx.storage, api.ctx.settings).mails_of(offered[0])
    assert [(m.template, m.to, m.params["quantity"]) for m in mails] == [
        ("waitlist_offered", fans[0].email, 1)
    ]


async def test_the_organizer_closes_a_tier_waiting_list(sqlite_api: Api) -> None:
    api = sqlite_api
    organizer, buyer, fan = await api.user("organizer"), await api.user(), await api.user()
    event = await api.event(organizer, tiers=TIERS[:1])
    await api.book(buyer, event["id"], quantity=2)
    r = await api.client.patch(
        f"/api/v1/events/{event['id']}",
        json={"tiers": [{"code": "GA", "waitlistOpen": False}]},
        headers=organizer.headers,
    )
    assert r.status_code == 200 and r.json()["data"]["tiers"][0]["waitlistOpen"] is False
    closed = await join(api, fan, event["id"])
    assert closed.status_code == 409 and closed.json()["code"] == "WAITLIST_CLOSED"


async def create_code(api: Api, organizer: Account, event_id: str, **body: Any):
    payload = {"code": "PRESALE", "maxUses": 3, "tiers": ["VIP"]} | body
    return await api.client.post(
        f"/api/v1/events/{event_id}/codes", json=payload, headers=organizer.headers
    )


async def test_codes_unlock_hidden_tiers_with_a_discount(
    sqlite_api: Api, advance_clock: Callable[[timedelta], None]
) -> None:
    api = sqlite_api
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, tiers=TIERS)
    public = await api.client.get(f"/api/v1/events/{event['id']}")
    assert [t["code"] for t in public.json()["data"]["tiers"]] == ["GA"]
    own = await api.client.get(f"/api/v1/events/{event['id']}", headers=organizer.headers)
    assert [t["code"] for t in own.json()["data"]["tiers"]] == ["GA", "VIP"]
    assert list(await availability(api, event["id"])) == ["GA"]
    hidden = await api.book(buyer, event["id"], tier="VIP")
    assert hidden.status_code == 404 and hidden.json()["code"] == "TIER_NOT_FOUND"
    made = await create_code(api, organizer, event["id"], discountPercent=10)
    assert made.status_code == 201, made.text
    code = made.json()["data"]
    assert code["uses"] == 0 and code["enabled"] is True
    stranger = await create_code(api, buyer, event["id"], code="MINE")
    assert stranger.status_code == 403
    taken = await create_code(api, organizer, event["id"])
    assert taken.status_code == 409 and taken.json()["code"] == "ACCESS_CODE_TAKEN"
    bad = await create_code(api, organizer, event["id"], code="X2", tiers=["NOPE"])
    assert bad.status_code == 422
    two = await create_code(
        api, organizer, event["id"], code="X3", tiers=["GA", "VIP"], reserveSeats=True
    )
    assert two.status_code == 422
    r = await api.book(buyer, event["id"], tier="VIP", quantity=2, accessCode="PRESALE")
    assert r.status_code == 201, r.text
    assert r.json()["data"]["unitPriceCents"] == 9000 and r.json()["data"]["totalCents"] == 18000
    other = await api.event(organizer, tiers=TIERS)
    for event_id, body, status, error in [
        (event["id"], {"accessCode": "NOPE", "tier": "VIP"}, 422, "ACCESS_CODE_INVALID"),
        (event["id"], {"accessCode": "PRESALE", "tier": "GA"}, 409, "ACCESS_CODE_NOT_USABLE"),
        (other["id"], {"accessCode": "PRESALE", "tier": "VIP"}, 422, "ACCESS_CODE_INVALID"),
        (event["id"], {"accessCode": "PRESALE", "waitlistEntryId": "x", "tier": "VIP"}, 422, None),
    ]:
        refused = await api.book(buyer, event_id, **body)
        assert refused.status_code == status, refused.text
        if error:
            assert refused.json()["code"] == error
    listed = await api.client.get(f"/api/v1/events/{event['id']}/codes", headers=organizer.headers)
    assert [(c["code"], c["uses"]) for c in listed.json()["data"]] == [("PRESALE", 1)]
    until = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    edited = await api.client.patch(
        f"/api/v1/events/{event['id']}/codes/{code['id']}",
        json={"validUntil": until, "maxUses": 1},
        headers=organizer.headers,
    )
    assert edited.status_code == 200 and edited.json()["data"]["maxUses"] == 1
    below = await api.client.patch(
        f"/api/v1/events/{event['id']}/codes/{code['id']}",
        json={"maxUses": 0},
        headers=organizer.headers,
    )
    assert below.status_code == 422
    used_up = await api.book(buyer, event["id"], tier="VIP", accessCode="PRESALE")
    assert used_up.json()["reason"] == "code_used_up"
    disabled = await api.client.delete(
        f"/api/v1/events/{event['id']}/codes/{code['id']}", headers=organizer.headers
    )
    assert disabled.status_code == 200 and disabled.json()["data"]["enabled"] is False
    assert (await api.book(buyer, event["id"], tier="VIP", accessCode="PRESALE")).json()[
        "reason"
    ] == "code_disabled"
    await api.client.patch(
        f"/api/v1/events/{event['id']}/codes/{code['id']}",
        json={"enabled": True, "maxUses": 2},
        headers=organizer.headers,
    )
    advance_clock(timedelta(minutes=6))
    expired = await api.book(buyer, event["id"], tier="VIP", accessCode="PRESALE")
    assert expired.status_code == 409 and expired.json()["reason"] == "code_expired"
    assert [
        d.describe()
        for d in await api.ctx.storage.bookings.recount(datetime.now(UTC), fix=False)
        if d.event_id == event["id"]
    ] == []


async def test_a_reserving_code_holds_seats_off_public_sale(sqlite_api: Api) -> None:
    api = sqlite_api
    organizer, buyer, fan = await api.user("organizer"), await api.user(), await api.user()
    event = await api.event(organizer, tiers=TIERS[:1])
    short = await create_code(
        api, organizer, event["id"], tiers=["GA"], maxUses=3, reserveSeats=True
    )
    assert short.status_code == 409 and short.json()["available"] == 2
    code = (
        await create_code(api, organizer, event["id"], tiers=["GA"], maxUses=1, reserveSeats=True)
    ).json()["data"]
    assert code["heldSeats"] == 1
    assert (await availability(api, event["id"]))["GA"]["available"] == 1
    assert (await api.book(buyer, event["id"])).status_code == 201
    assert (await api.book(buyer, event["id"])).status_code == 409
    checked = await api.client.post(
        f"/api/v1/events/{event['id']}/codes/check",
        json={"accessCode": "PRESALE"},
        headers=fan.headers,
    )
    assert [t["available"] for t in checked.json()["data"]["tiers"]] == [1]  # the code's seat
    r = await api.book(fan, event["id"], accessCode="PRESALE")
    assert r.status_code == 201, r.text
    listed = await api.client.get(f"/api/v1/events/{event['id']}/codes", headers=organizer.headers)
    assert [(c["uses"], c["heldSeats"]) for c in listed.json()["data"]] == [(1, 0)]


async def test_a_buyer_checks_what_a_code_unlocks_before_booking(sqlite_api: Api) -> None:
    api = sqlite_api
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, tiers=TIERS)

    async def check(text: str, event_id: str = event["id"], who: Account = buyer):
        return await api.client.post(
            f"/api/v1/events/{event_id}/codes/check",
            json={"accessCode": text},
            headers=who.headers,
        )

    code = (await create_code(api, organizer, event["id"], discountPercent=15)).json()["data"]
    r = await check("PRESALE")
    assert r.status_code == 200, r.text
    found = r.json()["data"]
    assert (found["code"], found["discountPercent"], found["validUntil"]) == ("PRESALE", 15, None)
    assert [
        (t["code"], t["hidden"], t["priceCents"], t["unitPriceCents"], t["available"])
        for t in found["tiers"]
    ] == [("VIP", True, 10000, 8500, 5)]
    unknown = await check("NOPE")
    assert unknown.status_code == 422 and unknown.json()["code"] == "ACCESS_CODE_INVALID"
    assert unknown.json()["message"] == "No such access code for this event"
    anonymous = await api.client.post(
        f"/api/v1/events/{event['id']}/codes/check", json={"accessCode": "PRESALE"}
    )
    assert anonymous.status_code == 401
    await api.client.delete(
        f"/api/v1/events/{event['id']}/codes/{code['id']}", headers=organizer.headers
    )
    disabled = await check("PRESALE")
    assert disabled.status_code == 409 and disabled.json()["reason"] == "code_disabled"
    assert disabled.json()["message"] == "This access code has been disabled"
    await api.client.patch(
        f"/api/v1/events/{event['id']}/codes/{code['id']}",
        json={"enabled": True, "maxUses": 1},
        headers=organizer.headers,
    )
    assert (await api.book(buyer, event["id"], tier="VIP", accessCode="PRESALE")).status_code == 201
    used_up = await check("PRESALE")
    assert used_up.status_code == 409 and used_up.json()["reason"] == "code_used_up"
    draft = await api.event(organizer, publish=False, tiers=TIERS)
    assert (await check("PRESALE", draft["id"])).status_code == 404
    listed = await api.client.get(f"/api/v1/events/{event['id']}/codes", headers=organizer.headers)
    assert [c["uses"] for c in listed.json()["data"]] == [1]  # checking used nothing
