"""Benchmark the waiting room: what a waiting client costs next to what a booking costs.

    uv run python bench/waiting_room.py [--clients 2000] [--duration 3] [--workers 2] [--rounds 2]

Starts the real server on a fresh PostgreSQL database and Redis, makes `--clients` buyers (written
through the storage port, tokens signed with the server's secret), and measures in one run,
with wrk (64 connections, bench/queue.lua picking a random buyer per request):
- join requests/s: buyers join one event's waiting room before it opens (201 for a buyer's
  first join, 200 after);
- position reads/s: GET …/queue/me, next to GET /health (the ceiling) in the same run; the
  server's CPU per read, and so per waiting client per minute at one read every 5 s;
  PostgreSQL's committed transactions during the reads next to an idle window as long
  (the background loops'): a waiting client adds none;
- bookings/s on an event with a waiting room (admitted buyers, Admission-Token checked)
  and on one without, interleaved round by round; the ratio is the token check's cost.

Writes bench/results/waiting_room.json and waiting_room.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run import (  # noqa: E402
    BENCH,
    cpu_seconds,
    drop_postgres,
    fresh_postgres,
    process_tree,
    signed_up,
    wrk,
)

from tests.support.accounts import Account  # noqa: E402
from tests.support.queue import many_buyers, queue_settings  # noqa: E402
from tests.support.server import Server  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_URL = "redis://127.0.0.1:6379/3"
SECRET = "bench-queue-secret-0123456789-0123456789"
CONNECTIONS = 64
POLL_SECONDS = 5.0
"""How often a waiting client is assumed to read its place (the waiting page's fallback)."""


async def transactions(database_url: str, idle: float) -> int:
    """PostgreSQL's count of committed transactions in the benchmark's database; with `idle`,
    how many the server commits in that many idle seconds (its background loops)."""
    if idle:
        before = await transactions(database_url, 0)
        await asyncio.sleep(idle)
        return await transactions(database_url, 0) - before
    await asyncio.sleep(0.7)  # backends report their statistics a moment after a commit
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(count) - 1  # this query's own transaction


async def make_event(http: httpx.AsyncClient, organizer: Account, queue: bool) -> str:
    body: dict[str, Any] = {
        "name": "Queue bench",
        "venue": "Arena",
        "startsAt": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
        "tiers": [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 1_000_000}],
    }
    if queue:
        body["queue"] = queue_settings(
            opensAt=(datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
            admitPerMinute=1_000_000,
            sessionSeconds=3600,
        )
    r = await http.post("/api/v1/events", json=body, headers=organizer.headers)
    assert r.status_code == 201, r.text
    event_id: str = r.json()["data"]["id"]
    r = await http.post(f"/api/v1/events/{event_id}/publish", headers=organizer.headers)
    assert r.status_code == 200, r.text
    return event_id


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    database_url = fresh_postgres()
    results: dict[str, Any] = {"clients": args.clients, "duration": args.duration}
    try:
        with Server(
            database_url, workers=args.workers, redis_url=REDIS_URL, JWT_SECRET=SECRET
        ) as server:
            limits = httpx.Limits(
                max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS
            )
            async with httpx.AsyncClient(
                base_url=server.base_url, limits=limits, timeout=60
            ) as http:
                results |= await _measure(server, http, database_url, args)
    finally:
        drop_postgres(database_url)
    return results


async def _measure(
    server: Server, http: httpx.AsyncClient, database_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    assert server.proc is not None
    tree = process_tree(server.proc.pid)
    organizer = await signed_up(http, database_url, "organizer")
    buyers = await many_buyers(database_url, args.clients, SECRET)
    queued = await make_event(http, organizer, queue=True)
    plain = await make_event(http, organizer, queue=False)
    out: dict[str, Any] = {}
    tokens_file = Path(tempfile.mkstemp(prefix="queue-tokens-", suffix=".txt")[1])

    def run(mode: str, event_id: str, lines: list[str]) -> tuple[float, dict[str, int], float]:
        """wrk in `mode`: requests/s, statuses, and the server's CPU seconds per request."""
        tokens_file.write_text("\n".join(lines) + "\n")
        env = os.environ | {
            "TOKENS_FILE": str(tokens_file),
            "EVENT_ID": event_id,
            "QUEUE_MODE": mode,
            "BENCH_DIR": str(BENCH),
        }
        before = sum(cpu_seconds(tree).values())
        script = "ceiling.lua" if mode == "health" else "queue.lua"
        path = "/health" if mode == "health" else "/"
        result = wrk(server.base_url + path, script, CONNECTIONS, args.duration, env)
        cpu = sum(cpu_seconds(tree).values()) - before
        statuses = {int(k): v for k, v in result.get("statuses", {}).items()}
        return result["rps"], statuses, cpu / max(1, result["requests"])

    plain_lines = [f"{b.access_token} -" for b in buyers]
    figures: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    # Joins: each buyer's first (201, its place made: with the first request of an account,
    # whose token version is read from storage once) from this process; then wrk repeating
    # them (200: the same place back).
    started = time.monotonic()
    for chunk in range(0, len(buyers), CONNECTIONS):
        replies = await asyncio.gather(
            *(
                http.post(f"/api/v1/events/{queued}/queue", headers=b.headers)
                for b in buyers[chunk : chunk + CONNECTIONS]
            )
        )
        assert all(r.status_code == 201 for r in replies)
    out["first_joins_per_s"] = len(buyers) / (time.monotonic() - started)
    for _ in range(args.rounds):
        rps, statuses, cpu = run("join", queued, plain_lines)
        assert set(statuses) == {200}, statuses
        keep("repeat_joins_per_s", rps)
        keep("server_cpu_ms_per_join", cpu * 1000)
    for _ in range(args.rounds):
        tx_idle = await transactions(database_url, args.duration)
        tx_before = await transactions(database_url, 0)
        rps, statuses, cpu = run("read", queued, plain_lines)
        tx_reads = await transactions(database_url, 0) - tx_before
        assert set(statuses) == {200}, statuses
        keep("reads_per_s", rps)
        keep("server_cpu_ms_per_read", cpu * 1000)
        keep("db_transactions_idle", tx_idle)
        keep("db_transactions_during_reads", tx_reads)
        keep("health_per_s", run("health", queued, plain_lines)[0])

    # Admit everyone, then book with and without the token check, interleaved.
    r = await http.patch(
        f"/api/v1/events/{queued}",
        json={"queue": {"opensAt": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}},
        headers=organizer.headers,
    )
    assert r.status_code == 200, r.text
    bookers = buyers[: min(len(buyers), 500)]
    admitted: dict[str, str] = {}
    while len(admitted) < len(bookers):
        await asyncio.sleep(0.5)
        for b in bookers:
            if b.id not in admitted:
                me = await http.get(f"/api/v1/events/{queued}/queue/me", headers=b.headers)
                if token := me.json()["data"]["admissionToken"]:
                    admitted[b.id] = token
    with_token = [f"{b.access_token} {admitted[b.id]}" for b in bookers]
    without = [f"{b.access_token} -" for b in bookers]
    for _ in range(args.rounds):
        rps, statuses, cpu = run("book", queued, with_token)
        assert set(statuses) == {201}, statuses
        keep("bookings_per_s_with_token", rps)
        keep("server_cpu_ms_per_booking_with_token", cpu * 1000)
        rps, statuses, cpu = run("book", plain, without)
        assert set(statuses) == {201}, statuses
        keep("bookings_per_s_without_queue", rps)
        keep("server_cpu_ms_per_booking_without_queue", cpu * 1000)
    os.unlink(tokens_file)
    out |= {name: statistics.median(values) for name, values in figures.items()}
    out["server_cpu_ms_per_waiting_client_minute"] = (
        out["server_cpu_ms_per_read"] * 60 / POLL_SECONDS
    )
    out["reads_over_health"] = out["reads_per_s"] / out["health_per_s"]
    out["reads_over_bookings"] = out["reads_per_s"] / out["bookings_per_s_without_queue"]
    out["booking_cpu_over_read_cpu"] = (
        out["server_cpu_ms_per_booking_without_queue"] / out["server_cpu_ms_per_read"]
    )
    out["token_check_ratio"] = (
        out["bookings_per_s_with_token"] / out["bookings_per_s_without_queue"]
    )
    return out


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "waiting_room.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = "\n".join(
        f"| {key} | {value:,.3f} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in results.items()
    )
    (RESULTS / "waiting_room.md").write_text(
        "# Waiting room (bench/waiting_room.py)\n\nOne run, one async client with "
        f"{CONNECTIONS} connections, on the same machine as the server.\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000, help="waiting buyers")
    parser.add_argument("--duration", type=int, default=3, help="seconds per measured run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per figure")
    results = asyncio.run(bench(parser.parse_args()))
    write(results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
