"""Benchmark the booking path against a trivial endpoint, on PostgreSQL and SQLite.

    uv run --group bench python bench/run.py [--duration 10] [--workers 2] [--rounds 2]
        [--backends postgresql,sqlite] [--baseline fb8df8b] [--candidate REV]
        [--env NAME=VALUE ...] [--against-env NAME=VALUE ...]

Starts the real server (uvicorn, rate limits off, Redis on) per backend, creates users and one
hot event, and drives wrk at 1/16/64/256 connections against GET /health (the ceiling),
POST /api/v1/bookings (a fresh Idempotency-Key and a bearer token per request) and
POST /reservations (the original partner contract, anonymous-partner mode). Every run is
checked (reconcile finds no drift, sales never exceed capacity, every 201 is stored); a
sell-out follows. The average batch size of group commit comes from the server's /metrics.

With `--baseline REV`, the same runs are made against that commit of the project (checked out
into a scratch folder, served with this environment) in the same process, interleaved round
by round, so that the machine's drift falls on both alike; the report gives each variant's
median over the rounds and the ratio between them. `--against-env NAME=VALUE` does the same
for one setting: this checkout against itself with that setting (`--env` sets one for both).

Writes bench/results/{results.json,results.md,latency.png}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import clock  # noqa: E402
from core.storage import build_storage  # noqa: E402
from tests.support.accounts import Account  # noqa: E402
from tests.support.server import Server  # noqa: E402 (the launcher the race tests use)

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
REDIS_DB = 11  # --redis-db: another engineer's bench may be using 11
CONCURRENCY = (1, 16, 64, 256)
HOT_CAPACITY = 1_000_000
CONTRACT_SEATS = 100_000_000
PATHS = ("bookings", "reservations")


def wrk(
    url: str, script: str, connections: int, seconds: int, env: dict[str, str]
) -> dict[str, Any]:
    threads = min(2, connections)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (uvicorn's supervisor and its workers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def pids_named(name: str) -> list[int]:
    return [
        int(comm.parent.name)
        for comm in Path("/proc").glob("[0-9]*/comm")
        if _read(comm).strip() == name
    ]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each process still alive."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        fields = _read(Path(f"/proc/{pid}/stat")).rpartition(")")[2].split()
        if len(fields) > 12:
            used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""  # the process has exited


def drive(
    server: Server, script: str, connections: int, seconds: int, env: dict[str, str]
) -> dict[str, Any]:
    """wrk against one write path, plus its confirmed (201) answers per second, the average
    batch size group commit formed meanwhile, and the CPU that each confirmed answer cost the
    server's processes, PostgreSQL, Redis and wrk (ms)."""
    assert server.proc is not None
    root = server.proc.pid
    groups: dict[str, Callable[[], list[int]]] = {
        "server": partial(process_tree, root),
        "postgres": partial(pids_named, "postgres"),
        "redis": partial(pids_named, "redis-server"),
    }
    batches_before = batch_totals(server)
    mail_before = mails_sent(server)
    before = {name: cpu_seconds(find()) for name, find in groups.items()}
    wrk_before = _children_cpu_seconds()
    result = wrk(server.base_url, script, connections, seconds, env)
    spent = {"wrk": _children_cpu_seconds() - wrk_before}
    for name, find in groups.items():
        # Processes started during the run (a pool opening connections) count from zero.
        after = cpu_seconds(find())
        spent[name] = sum(used - before[name].get(pid, 0.0) for pid, used in after.items())
    statements, bookings = (
        a - b for a, b in zip(batch_totals(server), batches_before, strict=True)
    )
    confirmed = result["statuses"].get("201", 0)
    result["mails_during"] = (mails_sent(server) or 0) - (mail_before or 0)
    result["mail"] = drain_mail(server, groups["server"]) if mail_before is not None else None
    result["confirmed_per_s"] = confirmed / (result["duration_us"] / 1e6)
    result["batch_avg"] = round(bookings / statements, 2) if statements else None
    result["cpu_ms"] = {
        name: round(cpu * 1000 / confirmed, 3) if confirmed else None for name, cpu in spent.items()
    }
    return result


def batch_totals(server: Server) -> tuple[float, float]:
    """(statements, bookings) of the reserve batch-size histogram, all workers summed; zeros
    for a version without group commit."""
    totals = {"count": 0.0, "sum": 0.0}
    for line in _metrics(server).splitlines():
        for kind in totals:
            if line.startswith(f"ticketboss_reserve_batch_size_{kind} "):
                totals[kind] = float(line.split()[1])
    return totals["count"], totals["sum"]


def mails_sent(server: Server) -> float | None:
    """Mails the server's senders handed to the transport so far (all workers); None for a
    version without mail."""
    scraped = _metrics(server)
    lines = [x for x in scraped.splitlines() if x.startswith("ticketboss_mail_sent_total{")]
    if not lines and "ticketboss_mail_sent" not in scraped:
        return None
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines)


def drain_mail(
    server: Server, server_pids: Callable[[], list[int]], quiet: float = 2.5, cap: float = 90
) -> dict[str, Any]:
    """After a run: wait until the senders stop sending (nothing new for `quiet` seconds),
    and what that cost the server's processes. Confirmations are sent behind the sales (the
    sender yields while requests arrive), so a booking's CPU in the run is the sale's alone
    and the mail's is measured here, per mail."""
    pids = server_pids()
    started, before = time.monotonic(), cpu_seconds(pids)
    sent_at_start = last = mails_sent(server) or 0.0
    last_change, after = started, before
    while time.monotonic() - last_change < quiet and time.monotonic() - started < cap:
        time.sleep(0.25)
        now = mails_sent(server) or 0.0
        if now != last:  # the CPU up to the last mail seen, not the quiet wait after it
            last, last_change, after = now, time.monotonic(), cpu_seconds(pids)
    cpu = sum(used - before.get(pid, 0.0) for pid, used in after.items())
    sent = last - sent_at_start
    return {
        "sent": int(sent),
        "seconds": round(last_change - started, 2),
        "cpu_ms_per_mail": round(cpu * 1000 / sent, 3) if sent else None,
    }


def _metrics(server: Server) -> str:
    token = os.environ.get("METRICS_TOKEN")  # unset: the server answers loopback
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=30).text


def _children_cpu_seconds() -> float:
    """CPU used by this process's finished children: wrk, once `wrk()` has waited for it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def prepare(server: Server, database_url: str, users: int) -> tuple[list[str], Account]:
    """Buyers' access tokens and an organizer, made through the server's API."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        organizer = await signed_up(http, database_url, "organizer")
        buyers = [await signed_up(http, database_url) for _ in range(users)]
    return [b.access_token for b in buyers], organizer


async def signed_up(http: httpx.AsyncClient, database_url: str, role: str = "user") -> Account:
    """Register and log in; a role is set with one UPDATE of `users.role`, the column every
    version of the schema has (a baseline's storage code is not importable from here)."""
    email, password = f"{role}-{uuid.uuid4().hex[:10]}@example.com", "bench passphrase 1234"
    body = {"email": email, "password": password, "name": role}
    r = await http.post("/api/v1/auth/register", json=body)
    r.raise_for_status()
    user_id = r.json()["data"]["user"]["id"]
    if role != "user":
        await set_role(database_url, user_id, role)
    r = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    r.raise_for_status()
    data = r.json()["data"]
    return Account(user_id, email, password, role, data["accessToken"], data["refreshToken"])


async def set_role(database_url: str, user_id: str, role: str) -> None:
    if database_url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
            db.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
            db.commit()
        return
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET role = $1 WHERE id = $2", role, user_id)
    finally:
        await conn.close()


async def new_event(server: Server, organizer: Account, capacity: int) -> str:
    from tests.support.races import hot_event

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        return await hot_event(
            http,
            organizer,
            [{"code": "GA", "name": "GA", "priceCents": 4900, "capacity": capacity}],
        )


async def verify(
    database_url: str, event_id: str, capacity: int, acknowledged: int
) -> dict[str, Any]:
    """A fast wrong answer must not pass: no drift, no oversell, every 201 stored."""
    storage = build_storage(database_url)
    try:
        counts = await storage.events.availability(event_id, clock.now())
        drift = [
            d
            for d in await storage.bookings.recount(clock.now(), fix=False)
            if d.event_id == event_id
        ]
        sold = sum(c.confirmed + c.pending for c in counts)
    finally:
        await storage.close()
    ok = not drift and sold <= capacity and sold >= acknowledged
    return {"sold": sold, "drift": len(drift), "ok": ok}


async def sell_out_window(database_url: str, event_id: str) -> float:
    from core.storage.requests import BookingQuery

    storage = build_storage(database_url)
    try:
        newest = await storage.bookings.find(BookingQuery(event_id=event_id, limit=1))
        first, last = None, newest[0].created_at if newest else None
        before: str | None = None
        while True:  # walk to the oldest booking
            page = await storage.bookings.find(
                BookingQuery(event_id=event_id, before_id=before, limit=100)
            )
            if not page:
                break
            first, before = page[-1].created_at, page[-1].id
    finally:
        await storage.close()
    return (last - first).total_seconds() if first and last else 0.0


def fresh_postgres() -> str:
    name = f"tb_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f'CREATE DATABASE "{name}"'],
        check=True,
    )
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-qc",
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        ],
        check=False,
    )


@dataclass
class Variant:
    """One version of the project under test: this checkout, or a baseline commit."""

    name: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    """Settings the server runs with on top of the benchmark's own (`--env`, `--against-env`)."""
    server: Server | None = None
    database_url: str = ""
    wrk_env: dict[str, str] = field(default_factory=dict)
    organizer: Account | None = None
    hot: str = ""
    acknowledged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATHS, 0))

    @property
    def current(self) -> bool:
        return self.root == ROOT

    async def start(self, backend: str, args: argparse.Namespace, scratch: Path) -> None:
        self.database_url = (
            fresh_postgres()
            if backend == "postgresql"
            else f"sqlite:///{scratch / f'{self.name}-{uuid.uuid4().hex[:6]}.db'}"
        )
        env = {
            "ACCESS_TOKEN_TTL_SECONDS": "7200",
            "LOG_LEVEL": "INFO",
            "TICKETBOSS_ANONYMOUS_PARTNERS": "true",
            "TICKETBOSS_TOTAL_SEATS": str(CONTRACT_SEATS),
            "PYTHONPATH": str(self.root),
        } | self.env
        server = Server(self.database_url, workers=args.workers, redis_url=args.redis_url, **env)
        server.cwd = self.root
        if not self.current:
            server.command[0] = str(self.root / ".venv" / "bin" / "python")
        if not (self.root / "modules" / "cli.py").exists():  # before the CLI moved to modules/
            server.command[server.command.index("modules.cli")] = "core.cli"
        self.server = server.start(timeout=300)  # a loaded machine starts workers slowly
        tokens, self.organizer = await prepare(server, self.database_url, users=50)
        tokens_file = scratch / f"tokens-{self.name}.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        self.hot = await new_event(server, self.organizer, HOT_CAPACITY)
        self.wrk_env = {
            "PATH": "/usr/bin:/bin",
            "TOKENS_FILE": str(tokens_file),
            "EVENT_ID": self.hot,
            "BENCH_DIR": str(BENCH),
        }

    def stop(self, backend: str) -> None:
        if self.server and self.server.proc and self.server.proc.poll() is None:
            self.server.terminate()
        if backend == "postgresql" and self.database_url:
            drop_postgres(self.database_url)

    async def check(self, path: str, event_id: str, capacity: int) -> dict[str, Any]:
        """The full check from storage for this checkout; for a baseline (whose schema this
        code does not read) the sales it reports over HTTP against the 201s it gave."""
        acknowledged = self.acknowledged[path]
        if self.current:
            return await verify(self.database_url, event_id, capacity, acknowledged)
        assert self.server is not None
        url = (
            f"{self.server.base_url}/reservations"
            if path == "reservations"
            else f"{self.server.base_url}/api/v1/events/{event_id}/availability"
        )
        async with httpx.AsyncClient(timeout=30) as http:
            body = (await http.get(url)).json()
        if path == "reservations":
            sold = body["totalSeats"] - body["availableSeats"]
        else:
            sold = sum(t["capacity"] - t["available"] for t in body["data"]["tiers"])
        return {"sold": sold, "drift": None, "ok": acknowledged <= sold <= capacity}


SCRIPTS = {"bookings": "booking.lua", "reservations": "reservation.lua"}


async def measure(
    variant: Variant, path: str, connections: int, args: argparse.Namespace
) -> dict[str, Any]:
    server = variant.server
    assert server is not None
    ceiling = wrk(
        f"{server.base_url}/health", "ceiling.lua", connections, args.duration, variant.wrk_env
    )
    run = drive(server, SCRIPTS[path], connections, args.duration, variant.wrk_env)
    variant.acknowledged[path] += run["statuses"].get("201", 0)
    event_id, capacity = (
        (variant.hot, HOT_CAPACITY) if path == "bookings" else ("node-meetup-2025", CONTRACT_SEATS)
    )
    check = await variant.check(path, event_id, capacity)
    rate = run["confirmed_per_s"]
    row = {
        "variant": variant.name,
        "path": path,
        "connections": connections,
        "ceiling_rps": round(ceiling["rps"], 1),
        "per_s": round(rate, 1),
        "p50_ms": run["p50_us"] / 1000,
        "p95_ms": run["p95_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "ratio": round(rate / ceiling["rps"], 3) if ceiling["rps"] else 0.0,
        "batch_avg": run["batch_avg"],
        "cpu_ms": run["cpu_ms"],
        "mails_during": run["mails_during"],
        "mail_drained": run["mail"] and run["mail"]["sent"],
        "mail_cpu_ms": run["mail"] and run["mail"]["cpu_ms_per_mail"],
        "non_201": {k: v for k, v in run["statuses"].items() if k != "201"},
        "socket_errors": sum(run["errors"].values()) - run["errors"]["status"],
        "verified": check["ok"],
    }
    print(json.dumps(row), flush=True)
    if not check["ok"]:
        raise SystemExit(f"verification failed: {variant.name} {path} {connections}: {check}")
    return row


async def bench_backend(
    backend: str, variants: list[Variant], args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    runs: list[dict[str, Any]] = []
    try:
        for variant in variants:
            await variant.start(backend, args, scratch)
            assert variant.server is not None
            for path in args.paths:  # warm up: pools filled, caches and code paths hot
                wrk(variant.server.base_url, SCRIPTS[path], 16, 3, variant.wrk_env)
        for connections in args.concurrency:
            for path in args.paths:
                for _ in range(args.rounds):
                    for variant in variants:  # interleaved: drift falls on every variant alike
                        runs.append(await measure(variant, path, connections, args))
        sellout = {v.name: await sell_out(v, args) for v in variants}
    finally:
        for variant in variants:
            variant.stop(backend)
    return {"runs": runs, "rows": summarise(runs), "sellout": sellout}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (variant, path, connections): the median of its rounds."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["variant"], run["path"], run["connections"]), []).append(run)
    rows = []
    for (variant, path, connections), group in groups.items():
        med = partial(_median, group)
        rows.append(
            {
                "variant": variant,
                "path": path,
                "connections": connections,
                "rounds": len(group),
                "ceiling_rps": med("ceiling_rps"),
                "per_s": med("per_s"),
                "ratio": med("ratio"),
                "p50_ms": med("p50_ms"),
                "p99_ms": med("p99_ms"),
                "batch_avg": med("batch_avg"),
                "server_cpu_ms": _median([r["cpu_ms"] for r in group], "server"),
                "postgres_cpu_ms": _median([r["cpu_ms"] for r in group], "postgres"),
                "mails_during": _median(group, "mails_during"),
                "mail_cpu_ms": _median(group, "mail_cpu_ms"),
                "non_201": sum(sum(r["non_201"].values()) for r in group),
                "verified": all(r["verified"] for r in group),
            }
        )
    return rows


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


async def sell_out(variant: Variant, args: argparse.Namespace) -> dict[str, Any]:
    """A 1,000-seat event, 64 connections, 10 s of demand: sold exactly 1,000, the rest 409."""
    assert variant.server is not None and variant.organizer is not None
    capacity = 1000
    event_id = await new_event(variant.server, variant.organizer, capacity)
    result = wrk(
        variant.server.base_url, "booking.lua", 64, 10, variant.wrk_env | {"EVENT_ID": event_id}
    )
    sold = result["statuses"].get("201", 0)
    other = {k: v for k, v in result["statuses"].items() if k not in ("201", "409")}
    outcome: dict[str, Any] = {
        "capacity": capacity,
        "sold": sold,
        "refused_409": result["statuses"].get("409", 0),
        "other_statuses": other,
    }
    if variant.current:
        check = await verify(variant.database_url, event_id, capacity, sold)
        window = await sell_out_window(variant.database_url, event_id)
        outcome["sold_out_in_s"] = round(window, 3)
        outcome["verified"] = check["ok"] and sold == capacity and not other
    else:
        outcome["verified"] = sold == capacity and not other
    print(json.dumps({"sellout": variant.name, **outcome}), flush=True)
    if not outcome["verified"]:
        raise SystemExit(f"sell-out verification failed: {variant.name} {outcome}")
    return outcome


def write_reports(results: dict[str, Any], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    names = results["variants"]
    lines = [
        "# Benchmark results",
        "",
        f"{results['machine']} · {args.workers} uvicorn workers · Redis on · rate limits off · "
        f"wrk {args.duration} s per run, on the same machine · median of {args.rounds} "
        "interleaved rounds. Ratio = confirmed/s ÷ the same server's /health req/s in the "
        "same round. Batch = bookings per reserve statement (group commit). CPU = ms per "
        "confirmed answer, from /proc. Mails in run = confirmation mails sent during the "
        "run; mail CPU = the server's CPU per mail sent in the drain after the run (the "
        "senders yield to sales, so a booking's CPU is the sale's and the mail's is apart).",
        "",
    ]
    if len(names) == 2:
        lines += [
            f"Variants: **{names[0]}** (`{args.candidate or 'this checkout'}`) and "
            f"**{names[1]}** (`{args.baseline or ' '.join(args.against_env)}`), "
            "served from the same environment and databases, run by run in turn.",
            "",
        ]
    lines += [
        "| backend | path | conns | variant | /health req/s | confirmed/s | ratio | p50 ms | p99 ms | batch | server CPU | PG CPU | mails in run | mail CPU | non-201 | verified |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for backend, data in results["backends"].items():
        for r in data["rows"]:
            lines.append(
                f"| {backend} | {r['path']} | {r['connections']} | {r['variant']} | "
                f"{_n(r['ceiling_rps'])} | {_n(r['per_s'])} | {_f(r['ratio'])} | "
                f"{_f(r['p50_ms'], 1)} | {_f(r['p99_ms'], 1)} | {_f(r['batch_avg'])} | "
                f"{_f(r['server_cpu_ms'])} | {_f(r['postgres_cpu_ms'])} | "
                f"{_n(r.get('mails_during'))} | {_f(r.get('mail_cpu_ms'))} | {r['non_201']} | "
                f"{'yes' if r['verified'] else 'NO'} |"
            )
    if len(names) == 2:
        lines += [
            "",
            f"## {names[0]} ÷ {names[1]} (confirmed/s, same rounds)",
            "",
            "| backend | path | conns | ×confirmed/s | p99 ms | server CPU ms |",
            "|---|---|---:|---:|---|---|",
        ]
        for backend, data in results["backends"].items():
            by = {(r["variant"], r["path"], r["connections"]): r for r in data["rows"]}
            for (variant, path, connections), new in by.items():
                old = by.get((names[1], path, connections))
                if variant != names[0] or old is None or not old["per_s"]:
                    continue
                lines.append(
                    f"| {backend} | {path} | {connections} | ×{new['per_s'] / old['per_s']:.2f} | "
                    f"{_f(old['p99_ms'], 1)} → {_f(new['p99_ms'], 1)} | "
                    f"{_f(old['server_cpu_ms'])} → {_f(new['server_cpu_ms'])} |"
                )
    lines += [
        "",
        "## Sell-out (capacity 1,000, 64 connections, 10 s of demand)",
        "",
        "| backend | variant | sold | clean 409s | other | sold out in | verified |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for backend, data in results["backends"].items():
        for name, s in data["sellout"].items():
            window = f"{s['sold_out_in_s']} s" if "sold_out_in_s" in s else "-"
            lines.append(
                f"| {backend} | {name} | {s['sold']} | {s['refused_409']} | "
                f"{s['other_statuses'] or '-'} | {window} | {'yes' if s['verified'] else 'NO'} |"
            )
    (RESULTS / "results.md").write_text("\n".join(lines) + "\n")
    plot(results)


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for backend, data in results["backends"].items():
        for variant in results["variants"]:
            rows = [r for r in data["rows"] if r["variant"] == variant and r["path"] == "bookings"]
            conns = [r["connections"] for r in rows]
            ax.plot(
                conns, [r["p99_ms"] for r in rows], marker="o", label=f"{backend} {variant} p99"
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("booking latency p99 (ms)")
    ax.set_title("POST /api/v1/bookings p99 latency vs concurrency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=120)


def checkout(rev: str, scratch: Path) -> Path:
    """The project at `rev`, unpacked into the scratch folder (no git work tree needed)."""
    target = scratch / f"rev-{rev}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    # its own environment: a baseline may need a dependency this checkout has dropped
    subprocess.run(
        ["uv", "sync", "--frozen", "--quiet"],
        cwd=target,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        | {"UV_PROJECT_ENVIRONMENT": str(target / ".venv")},
        check=True,
    )
    return target


def _settings(pairs: list[str]) -> dict[str, str]:
    if bad := [p for p in pairs if "=" not in p]:
        raise SystemExit(f"settings are NAME=VALUE: {bad}")
    return dict(p.split("=", 1) for p in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per row")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--baseline", help="a git revision to measure against, interleaved")
    parser.add_argument(
        "--candidate", help="a git revision to measure instead of this checkout (A/B of one commit)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting every variant's server runs with (repeatable)",
    )
    parser.add_argument(
        "--against-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="measure this checkout against itself with this setting too (repeatable), "
        "interleaved: an A/B of one setting, e.g. RESERVE_ONE_STATEMENT=false",
    )
    parser.add_argument("--redis-db", type=int, default=REDIS_DB, help="Redis database (flushed)")
    args = parser.parse_args()
    args.redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    if args.against_env and args.baseline:
        raise SystemExit("--against-env and --baseline each name the second variant: pick one")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.paths = args.paths.split(",")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    import platform

    with tempfile.TemporaryDirectory() as scratch:
        common = _settings(args.env)
        this = checkout(args.candidate, Path(scratch)) if args.candidate else ROOT
        variants_of = [("this", this, common)]
        if args.baseline:
            variants_of.append(("baseline", checkout(args.baseline, Path(scratch)), common))
        if args.against_env:
            variants_of.append(("against", this, common | _settings(args.against_env)))
        results: dict[str, Any] = {
            "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "baseline": args.baseline,
            "variants": [name for name, _, _ in variants_of],
            "settings": {name: env for name, _, env in variants_of},
            "backends": {},
        }
        for backend in args.backends.split(","):
            variants = [Variant(name, root, env) for name, root, env in variants_of]
            results["backends"][backend] = asyncio.run(
                bench_backend(backend, variants, args, Path(scratch))
            )
    write_reports(results, args)
    print(f"wrote {RESULTS}/results.json, results.md, latency.png")


if __name__ == "__main__":
    main()
