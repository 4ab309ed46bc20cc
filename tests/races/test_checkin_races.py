"""Scanners racing at the door, through the real server (2 workers) on every backend: 20
scanners scanning one ticket at once let it in exactly once; one scan sent many times at once
(the same nonce) gets one answer. Checked afterwards through the organizer's door figures."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx

from tests.support.races import account, hot_event
from tests.support.server import Server

SCANNERS = 20
TICKETS = 3


async def test_twenty_scanners_let_a_ticket_in_once(database_url: str) -> None:
    with Server(database_url) as server:
        limits = httpx.Limits(max_connections=SCANNERS * 2, max_keepalive_connections=SCANNERS * 2)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as http:
            organizer = await account(http, database_url, "organizer")
            buyer = await account(http, database_url)
            tiers = [{"code": "GA", "name": "GA", "priceCents": 1000, "capacity": 50}]
            event_id = await hot_event(http, organizer, tiers)
            events = f"/api/v1/events/{event_id}"
            r = await http.post(
                f"{events}/checkin-lists", json={"name": "Main"}, headers=organizer.headers
            )
            list_id = r.json()["data"]["id"]

            async def scanner(n: int) -> dict[str, str]:
                r = await http.post(
                    f"{events}/scanners", json={"name": f"gate {n}"}, headers=organizer.headers
                )
                return {"Authorization": f"Bearer {r.json()['data']['token']}"}

            scanners = [await scanner(n) for n in range(SCANNERS)]
            headers = buyer.headers | {"Idempotency-Key": uuid.uuid4().hex}
            body = {"eventId": event_id, "tier": "GA", "quantity": TICKETS}
            booking = (await http.post("/api/v1/bookings", json=body, headers=headers)).json()
            r = await http.get(
                f"/api/v1/bookings/{booking['data']['id']}/tickets", headers=buyer.headers
            )
            tickets = r.json()["data"]

            async def scan(qr: str, device: dict[str, str], nonce: str) -> str:
                body = {"list": list_id, "qr": qr, "nonce": nonce}
                r = await http.post("/api/v1/checkin/redeem", json=body, headers=device)
                assert r.status_code == 200, r.text
                result: str = r.json()["data"]["result"]
                return result

            rounds = []
            for ticket in tickets[:-1]:
                rounds.append(
                    Counter(
                        await asyncio.gather(
                            *(scan(ticket["qr"], s, uuid.uuid4().hex) for s in scanners)
                        )
                    )
                )
            replayed = await asyncio.gather(
                *(scan(tickets[-1]["qr"], scanners[0], "one-scan") for _ in range(SCANNERS))
            )
            r = await http.get(f"{events}/checkin/stats", headers=organizer.headers)
            stats = r.json()["data"]
    for counted in rounds:
        assert counted == {"ok": 1, "already_used": SCANNERS - 1}
    assert set(replayed) == {"ok"}  # one scan, one answer, however often it arrives
    assert (stats["checkedIn"], stats["expected"]) == (TICKETS, TICKETS)
