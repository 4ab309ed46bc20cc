"""A door to test: an organizer's event, a buyer's confirmed booking, a list and a scanner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.accounts import Account
from tests.support.api import Api

TWO_TIERS = [
    {"code": "GA", "name": "General Admission", "priceCents": 2500, "capacity": 100},
    {"code": "VIP", "name": "VIP", "priceCents": 9000, "capacity": 10},
]


@dataclass
class Door:
    api: Api
    organizer: Account
    buyer: Account
    event_id: str
    list_id: str
    scanner: dict[str, str]
    """The scanner's `Authorization` header."""

    async def tickets(self, booking_id: str) -> list[dict[str, Any]]:
        r = await self.api.client.get(
            f"/api/v1/bookings/{booking_id}/tickets", headers=self.buyer.headers
        )
        assert r.status_code == 200, r.text
        tickets: list[dict[str, Any]] = r.json()["data"]
        return tickets

    async def booked(self, quantity: int = 1, tier: str = "GA") -> dict[str, Any]:
        r = await self.api.book(self.buyer, self.event_id, quantity, tier=tier)
        assert r.status_code == 201, r.text
        booking: dict[str, Any] = r.json()["data"]
        return booking

    async def redeem(self, qr: str, **fields: Any) -> httpx.Response:
        body = {"list": self.list_id, "qr": qr, "nonce": uuid.uuid4().hex} | fields
        return await self.api.client.post("/api/v1/checkin/redeem", json=body, headers=self.scanner)

    async def result(self, qr: str, **fields: Any) -> str:
        r = await self.redeem(qr, **fields)
        assert r.status_code == 200, r.text
        result: str = r.json()["data"]["result"]
        return result

    async def new_list(self, **body: Any) -> str:
        r = await self.api.client.post(
            f"/api/v1/events/{self.event_id}/checkin-lists",
            json={"name": "Door"} | body,
            headers=self.organizer.headers,
        )
        assert r.status_code == 201, r.text
        list_id: str = r.json()["data"]["id"]
        return list_id


async def scanner_for(api: Api, organizer: Account, event_id: str) -> dict[str, str]:
    r = await api.client.post(
        f"/api/v1/events/{event_id}/scanners",
        json={"name": "Gate 1"},
        headers=organizer.headers,
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['data']['token']}"}


async def open_door(api: Api) -> Door:
    organizer, buyer = await api.user("organizer"), await api.user()
    event = await api.event(organizer, tiers=TWO_TIERS)
    door = Door(api, organizer, buyer, event["id"], "", {})
    door.list_id = await door.new_list()
    door.scanner = await scanner_for(api, organizer, event["id"])
    return door
