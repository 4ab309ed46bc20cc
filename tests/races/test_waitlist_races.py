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


@pytest.fixture(scope="module")
def short_offers(served: tuple[str, Server]) -> Iterator[tuple[str, Server, Server]]:
    """A second server on the module's database whose offers last one second (an entry's
    offer lasts what the server it joined through said)."""
    database_url, long = served
    with Server(database_url, WAITLIST_OFFER_SECONDS="1", EXPIRE_SWEEP_SECONDS="0.2") as short:
        yield database_url, long, short


async def test_offers_expiring_while_their_buyers_book_end_one_way_each(
    short_offers: tuple[str, Server, Server],
) -> None:
    """Ten offers of one second, claimed from 0.1 s to 2 s after they were made, while the
    sweeper ends them and hands their seats to the next in line and a holder keeps trying to
    take any seat that comes free: each offer is either booked (201) or refused as expired
    (409), never both, and no seat is sold twice or lost. The late fans join through the
    other server: their offers, made as the first ones expire, last an hour."""
    database_url, long, server = short_offers
    backend = "mongodb" if database_url.startswith("mongodb") else database_url.split(":", 1)[0]
    capacity, late_n = 10, 4
    async with client(server, backend) as http, client(long, backend) as long_http:
        organizer = await account(http, database_url, "organizer")
        holder = await account(http, database_url)
        fans = await asyncio.gather(*(account(http, database_url) for _ in range(capacity)))
        late = await asyncio.gather(*(account(http, database_url) for _ in range(late_n)))
        event_id = await hot_event(
            http,
            organizer,
            [{"code": "GA", "name": "GA", "priceCents": 5000, "capacity": capacity}],
        )
        bookings = [await book(http, holder, event_id) for _ in range(capacity)]
        assert all(b.status_code == 201 for b in bookings)

        def join(fan: Account, via: httpx.AsyncClient = http) -> Any:
            body = {"tier": "GA", "quantity": 1}
            return via.post(f"/api/v1/events/{event_id}/waitlist", json=body, headers=fan.headers)

        for fan in fans:  # one by one: their order is the offers' order
            assert (await join(fan)).status_code == 201
        for fan in late:  # behind the first ten, whose offers come first
            assert (await join(fan, long_http)).status_code == 201
        for b in bookings:
            cancelled = await http.patch(
                f"/api/v1/bookings/{b.json()['data']['id']}/cancel", headers=holder.headers
            )
            assert cancelled.status_code == 200
        offered_at = asyncio.get_running_loop().time()
        by_owner = {e.owner_id: e for e in await entries(database_url, event_id)}
        assert all(by_owner[f.id].status in ("offered", "expired") for f in fans)

        async def claim(i: int, fan: Account) -> httpx.Response:
            """The last offered claims first, 0.1 s after its offer; the first, 2 s after."""
            spread = (capacity - 1 - i) * 1.9 / (capacity - 1)
            delay = 0.1 + spread - (asyncio.get_running_loop().time() - offered_at)
            await asyncio.sleep(max(0.0, delay))
            response: httpx.Response = await book(
                http, fan, event_id, waitlistEntryId=by_owner[fan.id].id
            )
            return response

        async def grab() -> int:
            taken = 0
            for _ in range(20):
                taken += (await book(http, holder, event_id)).status_code == 201
                await asyncio.sleep(0.1)
            return taken

        *claims, grabbed = await asyncio.gather(*(claim(i, f) for i, f in enumerate(fans)), grab())
        await asyncio.sleep(1.0)  # the sweeper has ended every offer left to expire
    outcomes = Counter(r.status_code for r in claims)
    assert set(outcomes) <= {201, 409}, [r.text for r in claims if r.status_code not in (201, 409)]
    assert {r.json()["code"] for r in claims if r.status_code == 409} <= {
        "WAITLIST_OFFER_NOT_USABLE"
    }
    assert outcomes[201] >= 1 and outcomes[409] >= 1  # both sides of the expiry were raced
    found = {e.owner_id: e for e in await entries(database_url, event_id)}
    for fan, r in zip(fans, claims, strict=True):
        assert found[fan.id].status == ("booked" if r.status_code == 201 else "expired")
    # The expired offers' seats went to the late fans in their order, then to anyone.
    expired = outcomes[409]
    late_states = [found[f.id].status for f in late]
    to_late = min(expired, late_n)
    assert late_states == ["offered"] * to_late + ["waiting"] * (late_n - to_late)
    assert grabbed == expired - to_late
    counts, drift = await counts_and_drift(database_url, event_id)
    assert drift == []
    ga = counts[0]
    assert ga.pending + ga.confirmed == outcomes[201] + grabbed
    assert ga.blocked == to_late and ga.available == 0
    assert set((await offers_made(database_url, event_id)).values()) == {1}
    print(
        f"\n[offer expiry {backend}] booked={outcomes[201]} expired={expired} "
        f"late_offered={to_late} grabbed={grabbed}"
    )
