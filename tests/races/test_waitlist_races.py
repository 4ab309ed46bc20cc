"""Access codes and waiting lists raced through the real server (2 workers), one server per
backend for the module: redemptions racing for a code's last uses, cancels racing joins and
the offers they make. Run with -s to see what was measured."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.storage import build_storage
from core.storage.records import WaitlistEntry
from core.storage.requests import ChangeQuery
from tests.support.accounts import Account
from tests.support.races import account, counts_and_drift, hot_event
from tests.support.server import Server
from tests.support.services import database_of_its_own

BACKENDS = [
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mongodb", marks=pytest.mark.mongodb),
]
CONNECTIONS = {"sqlite": 100, "postgresql": 200, "mongodb": 32}


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server]]:
    with (
        database_of_its_own(request, request.param) as database_url,
        Server(database_url, EXPIRE_SWEEP_SECONDS="0.5") as server,
    ):
        yield database_url, server


def client(server: Server, backend: str) -> httpx.AsyncClient:
    n = CONNECTIONS[backend]
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    return httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=120)


def book(http: httpx.AsyncClient, who: Account, event_id: str, **body: Any) -> Any:
    payload = {"eventId": event_id, "tier": "GA", "quantity": 1} | body
    headers = who.headers | {"Idempotency-Key": uuid.uuid4().hex}
    return http.post("/api/v1/bookings", json=payload, headers=headers)


async def entries(database_url: str, event_id: str) -> list[WaitlistEntry]:
    storage = build_storage(database_url)
    try:
        return await storage.waitlist.find(event_id=event_id)
    finally:
        await storage.close()


async def offers_made(database_url: str, event_id: str) -> Counter[str]:
    storage = build_storage(database_url)
    try:
        found = await storage.changes.find(
            ChangeQuery(event_id=event_id, type="waitlist.offered", limit=1000)
        )
        return Counter(c.subject_id for c in found)
    finally:
        await storage.close()


async def test_200_redemptions_race_for_a_50_use_code(served: tuple[str, Server]) -> None:
    database_url, server = served
    backend = "mongodb" if database_url.startswith("mongodb") else database_url.split(":", 1)[0]
    async with client(server, backend) as http:
        organizer = await account(http, database_url, "organizer")
        buyers = await asyncio.gather(*(account(http, database_url) for _ in range(4)))
        event_id = await hot_event(
            http, organizer, [{"code": "GA", "name": "GA", "priceCents": 5000, "capacity": 60}]
        )
        r = await http.post(
            f"/api/v1/events/{event_id}/codes",
            json={
                "code": "RACE50",
                "maxUses": 50,
                "tiers": ["GA"],
                "reserveSeats": True,
                "discountPercent": 20,
            },
            headers=organizer.headers,
        )
        assert r.status_code == 201, r.text
        code_id = r.json()["data"]["id"]
        # 200 redemptions and 40 plain bookings at once: the code's 50 seats are its holders'
        # alone, the other 10 go to whoever wins them.
        redemptions = [book(http, buyers[i % 4], event_id, accessCode="RACE50") for i in range(200)]
        plain = [book(http, buyers[i % 4], event_id) for i in range(40)]
        results = await asyncio.gather(*redemptions, *plain)
        redeemed, bought = results[:200], results[200:]
        codes = Counter(r.status_code for r in redeemed)
        assert codes[201] == 50, codes
        assert set(codes) <= {201, 409}, [r.text for r in redeemed if r.status_code >= 500][:3]
        assert {r.json()["reason"] for r in redeemed if r.status_code == 409} == {"code_used_up"}
        assert all(
            r.json()["data"]["unitPriceCents"] == 4000 for r in redeemed if r.status_code == 201
        )
        assert Counter(r.status_code for r in bought)[201] == 10
        listed = await http.get(f"/api/v1/events/{event_id}/codes", headers=organizer.headers)
        assert [(c["uses"], c["heldSeats"]) for c in listed.json()["data"]] == [(50, 0)]
        # A cancelled redemption gives its use (and its held seat) back.
        won = [(i, r.json()["data"]["id"]) for i, r in enumerate(redeemed) if r.status_code == 201]
        for i, booking_id in won[:5]:
            who = buyers[i % 4]  # redemption i was made by this buyer
            c = await http.patch(f"/api/v1/bookings/{booking_id}/cancel", headers=who.headers)
            assert c.status_code == 200, c.text
        listed = await http.get(f"/api/v1/events/{event_id}/codes", headers=organizer.headers)
        assert [(c["id"], c["uses"], c["heldSeats"]) for c in listed.json()["data"]] == [
            (code_id, 45, 5)
        ]
        free = await http.get(f"/api/v1/events/{event_id}/availability")
        assert free.json()["data"]["tiers"][0]["available"] == 0
    counts, drift = await counts_and_drift(database_url, event_id)
    assert drift == []
    assert counts[0].confirmed == 55 and counts[0].blocked == 5
    print(
        f"\n[code race {backend}] redemptions={dict(codes)} plain={Counter(r.status_code for r in bought)}"
    )


async def test_cancels_racing_joins_offer_each_seat_once_in_order(
    served: tuple[str, Server],
) -> None:
    database_url, server = served
    backend = "mongodb" if database_url.startswith("mongodb") else database_url.split(":", 1)[0]
    capacity, cancels, fans_n = 20, 10, 22
    async with client(server, backend) as http:
        organizer = await account(http, database_url, "organizer")
        holders = await asyncio.gather(*(account(http, database_url) for _ in range(2)))
        fans = await asyncio.gather(*(account(http, database_url) for _ in range(fans_n)))
        event_id = await hot_event(
            http,
            organizer,
            [{"code": "GA", "name": "GA", "priceCents": 5000, "capacity": capacity}],
        )
        bookings = await asyncio.gather(
            *(book(http, holders[i % 2], event_id) for i in range(capacity))
        )
        assert all(b.status_code == 201 for b in bookings)
        joined_before = await asyncio.gather(
            *(
                http.post(
                    f"/api/v1/events/{event_id}/waitlist",
                    json={"tier": "GA", "quantity": 1},
                    headers=f.headers,
                )
                for f in fans[:2]
            )
        )
        assert all(j.status_code == 201 for j in joined_before)

        def cancel(i: int) -> Any:
            booking = bookings[i].json()["data"]["id"]
            return http.patch(f"/api/v1/bookings/{booking}/cancel", headers=holders[i % 2].headers)

        def join(fan: Account) -> Any:
            return http.post(
                f"/api/v1/events/{event_id}/waitlist",
                json={"tier": "GA", "quantity": 1},
                headers=fan.headers,
            )

        # Interleaved, so that joins land between the cancels and the offers they make.
        racing = fans[2:]
        calls = [join(f) for f in racing[:cancels]]
        calls = [
            c for pair in zip(calls, [cancel(i) for i in range(cancels)], strict=True) for c in pair
        ]
        raced = await asyncio.gather(*calls, *(join(f) for f in racing[cancels:]))
        cancelled = raced[1 : 2 * cancels : 2]
        joined = raced[0 : 2 * cancels : 2] + raced[2 * cancels :]
        assert all(r.status_code == 200 for r in cancelled)
        joins = Counter(r.status_code for r in joined)
        assert set(joins) <= {201, 409}, joins
        assert {r.json()["code"] for r in joined if r.status_code == 409} <= {"SEATS_AVAILABLE"}
        found = await entries(database_url, event_id)
        offered = [e for e in found if e.status == "offered"]
        waiting = [e for e in found if e.status == "waiting"]
        counts, drift = await counts_and_drift(database_url, event_id)
        assert drift == []
        ga = counts[0]
        # None lost: every freed seat is offered, or free while nobody waits for it.
        assert len(offered) + ga.available == cancels
        assert not waiting or ga.available == 0
        # In order: every offer went to an entry that joined before every one still waiting.
        assert max(e.seq for e in offered) < min((e.seq for e in waiting), default=10**9)
        # Never twice.
        assert set((await offers_made(database_url, event_id)).values()) == {1}
        by_owner = {f.id: f for f in fans}
        # The offered book their seats while everyone else tries to take them.
        claims = [book(http, by_owner[e.owner_id], event_id, waitlistEntryId=e.id) for e in offered]
        grabs = [book(http, holders[i % 2], event_id) for i in range(10)]
        results = await asyncio.gather(*claims, *grabs)
        assert all(r.status_code == 201 for r in results[: len(claims)]), [
            r.text for r in results[: len(claims)] if r.status_code != 201
        ][:3]
        grabbed = sum(r.status_code == 201 for r in results[len(claims) :])
        assert grabbed == ga.available
    counts, drift = await counts_and_drift(database_url, event_id)
    assert drift == []
    assert counts[0].confirmed == capacity and counts[0].blocked == 0
    print(
        f"\n[waitlist race {backend}] joins={dict(joins)} offered={len(offered)} "
        f"waiting={len(waiting)} free_after_cancels={ga.available} grabbed={grabbed}"
    )
