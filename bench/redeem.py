"""Benchmark check-in: redeems per second through the real server, PostgreSQL and SQLite.

    uv run --group bench python bench/redeem.py [--duration 3] [--rounds 2] [--concurrency 16]

Starts one server per backend (uvicorn, 2 workers, rate limits off), sells `concurrency`
tickets, and gives each of as many scanners one ticket, which it lets in and out again
(`entry`, `exit`, `entry`…, a fresh nonce each time: every scan is a real redemption, never a
replay) for `duration` seconds. Rounds alternate between the backends, so the machine's drift
falls on both alike; the report gives each backend's median and the ratio between them. Every
answer must be `ok` (the exits make each next entry legal): anything else fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import drop_postgres, fresh_postgres, new_event, signed_up  # noqa: E402

from tests.support.server import Server  # noqa: E402


async def door(
    server: Server, database_url: str, tickets: int
) -> list[tuple[dict[str, str], str, str]]:
    """(scanner header, list id, QR) per ticket."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        organizer = await signed_up(http, database_url, "organizer")
        buyer = await signed_up(http, database_url)
        event_id = await new_event(server, organizer, tickets)
        events = f"/api/v1/events/{event_id}"
        r = await http.post(
            f"{events}/checkin-lists", json={"name": "Main"}, headers=organizer.headers
        )
        list_id = r.json()["data"]["id"]
        qrs: list[str] = []
        while len(qrs) < tickets:
            quantity = min(10, tickets - len(qrs))
            headers = buyer.headers | {"Idempotency-Key": uuid.uuid4().hex}
            body = {"eventId": event_id, "tier": "GA", "quantity": quantity}
            booking = (await http.post("/api/v1/bookings", json=body, headers=headers)).json()
            r = await http.get(
                f"/api/v1/bookings/{booking['data']['id']}/tickets", headers=buyer.headers
            )
            qrs += [t["qr"] for t in r.json()["data"]]
        scanners = []
        for n in range(tickets):
            r = await http.post(
                f"{events}/scanners", json={"name": f"s{n}"}, headers=organizer.headers
            )
            scanners.append({"Authorization": f"Bearer {r.json()['data']['token']}"})
    return [(s, list_id, qr) for s, qr in zip(scanners, qrs, strict=True)]


async def round_of(
    server: Server, doors: list[tuple[dict[str, str], str, str]], seconds: float
) -> float:
    limits = httpx.Limits(max_connections=len(doors), max_keepalive_connections=len(doors))
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as http:
        deadline = time.perf_counter() + seconds
        done = 0

        async def scanner(header: dict[str, str], list_id: str, qr: str) -> None:
            nonlocal done
            kind = "entry"
            while time.perf_counter() < deadline:
                body = {"list": list_id, "qr": qr, "nonce": uuid.uuid4().hex, "type": kind}
                r = await http.post("/api/v1/checkin/redeem", json=body, headers=header)
                result = r.json()["data"]["result"] if r.status_code == 200 else r.text
                if result != "ok" and kind == "entry":
                    raise SystemExit(f"an entry after an exit was answered {result!r}")
                kind = "exit" if kind == "entry" else "entry"
                done += 1

        # Each scanner starts with its ticket outside; a ticket left inside by an earlier
        # round is let out first (that scan counts too: it is a real redemption).
        for header, list_id, qr in doors:
            body = {"list": list_id, "qr": qr, "nonce": uuid.uuid4().hex, "type": "exit"}
            await http.post("/api/v1/checkin/redeem", json=body, headers=header)
        started = time.perf_counter()
        await asyncio.gather(*(scanner(*d) for d in doors))
        return done / (time.perf_counter() - started)


def cleanup(urls: dict[str, str]) -> None:
    drop_postgres(urls["postgresql"])
    Path(urls["sqlite"].removeprefix("sqlite:///")).unlink(missing_ok=True)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    scratch = BENCH / "results"
    scratch.mkdir(exist_ok=True)
    pg = fresh_postgres()
    urls = {
        "postgresql": pg,
        "sqlite": f"sqlite:///{scratch / f'redeem-{uuid.uuid4().hex[:8]}.db'}",
    }
    servers: dict[str, Server] = {}
    measured: dict[str, list[float]] = {b: [] for b in urls}
    try:
        for backend, url in urls.items():
            servers[backend] = Server(url, workers=args.workers, redis_url=args.redis).start()
        doors = {b: await door(servers[b], urls[b], args.concurrency) for b in urls}
        for _ in range(args.rounds):
            for backend in urls:
                measured[backend].append(
                    await round_of(servers[backend], doors[backend], args.duration)
                )
    finally:
        for server in servers.values():
            server.kill()
        cleanup(urls)
    medians: dict[str, Any] = {b: statistics.median(v) for b, v in measured.items()}
    for backend, runs in measured.items():
        print(
            f"{backend:10} redeems/s median {medians[backend]:8.1f}  rounds {[round(x) for x in runs]}"
        )
    print(f"postgresql / sqlite: {medians['postgresql'] / medians['sqlite']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
