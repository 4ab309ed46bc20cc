"""Benchmark the booking path against a trivial endpoint, on PostgreSQL and SQLite.

    uv run --group bench python bench/run.py [--duration 10] [--workers 2] [--backends postgresql,sqlite]

Starts the real server (uvicorn, rate limits off, Redis on) per backend, creates users and one
hot event, drives wrk at 1/16/64/256 connections against GET /health (the ceiling) and
POST /api/v1/bookings (a fresh Idempotency-Key and a bearer token per request), checks every run
(reconcile finds no drift, sales never exceed capacity), runs a sell-out, and writes
bench/results/{results.json,results.md,latency.png}. On PostgreSQL it also drives the two
floors of bench/floor.py (the booking's round trips bare, and routed by FastAPI alone), so the
report shows how far the stack is from what this machine can do at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.storage import build_storage  # noqa: E402
from core.storage.records import utcnow  # noqa: E402
from tests.support.accounts import Account  # noqa: E402
from tests.support.server import Server  # noqa: E402 (the launcher the race tests use)

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
REDIS_URL = "redis://127.0.0.1:6379/11"
CONCURRENCY = (1, 16, 64, 256)
FLOORS = {"bare": "app", "fastapi": "framework_app"}  # report name -> app in bench/floor.py
HOT_CAPACITY = 1_000_000


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


def drive_bookings(
    server: Server, connections: int, seconds: int, env: dict[str, str]
) -> dict[str, Any]:
    """wrk against POST /api/v1/bookings, plus confirmed bookings/s and the CPU that each
    confirmed booking cost the server's processes, PostgreSQL, Redis and wrk (ms)."""
    assert server.proc is not None
    root = server.proc.pid
    groups: dict[str, Callable[[], list[int]]] = {
        "server": partial(process_tree, root),
        "postgres": partial(pids_named, "postgres"),
        "redis": partial(pids_named, "redis-server"),
    }
    before = {name: cpu_seconds(find()) for name, find in groups.items()}
    wrk_before = _children_cpu_seconds()
    result = wrk(server.base_url, "booking.lua", connections, seconds, env)
    spent = {"wrk": _children_cpu_seconds() - wrk_before}
    for name, find in groups.items():
        # Processes started during the run (a pool opening connections) count from zero.
        after = cpu_seconds(find())
        spent[name] = sum(used - before[name].get(pid, 0.0) for pid, used in after.items())
    confirmed = result["statuses"].get("201", 0)
    result["confirmed_per_s"] = confirmed / (result["duration_us"] / 1e6)
    result["cpu_ms"] = {
        name: round(cpu * 1000 / confirmed, 3) if confirmed else None for name, cpu in spent.items()
    }
    return result


def _children_cpu_seconds() -> float:
    """CPU used by this process's finished children: wrk, once `wrk()` has waited for it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def prepare(server: Server, database_url: str, users: int) -> tuple[list[str], Account]:
    from tests.support.races import account

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        organizer = await account(http, database_url, "organizer")
        buyers = [await account(http, database_url) for _ in range(users)]
    return [b.access_token for b in buyers], organizer


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
        counts = await storage.events.availability(event_id, utcnow())
        drift = [
            d for d in await storage.bookings.recount(utcnow(), fix=False) if d.event_id == event_id
        ]
        sold = sum(c.confirmed + c.pending for c in counts)
    finally:
        await storage.close()
    ok = not drift and sold <= capacity and sold >= acknowledged
    return {"sold": sold, "drift": len(drift), "ok": ok}


async def sell_out_window(database_url: str, event_id: str) -> float:
    from core.storage.records import BookingQuery

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


async def bench_backend(backend: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    database_url = (
        fresh_postgres() if backend == "postgresql" else f"sqlite:///{scratch / 'bench.db'}"
    )
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {"ACCESS_TOKEN_TTL_SECONDS": "7200", "LOG_LEVEL": "INFO"}
    server = Server(database_url, workers=args.workers, redis_url=REDIS_URL, **env)
    rows: list[dict[str, Any]] = []
    floors: dict[str, Server] = {}
    try:
        server.start()
        tokens, organizer = await prepare(server, database_url, users=50)
        tokens_file = scratch / "tokens.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        hot = await new_event(server, organizer, HOT_CAPACITY)
        wrk_env = {"PATH": "/usr/bin:/bin", "TOKENS_FILE": str(tokens_file), "EVENT_ID": hot}
        if backend == "postgresql" and args.floor:
            floors = {name: start_floor(name, database_url, args.workers) for name in FLOORS}
        acknowledged = 0
        for connections in args.concurrency:
            ceiling = wrk(
                f"{server.base_url}/health", "ceiling.lua", connections, args.duration, wrk_env
            )
            booking = drive_bookings(server, connections, args.duration, wrk_env)
            floor_runs = {
                name: drive_bookings(floor, connections, args.duration, wrk_env)
                for name, floor in floors.items()
            }
            for run in (booking, *floor_runs.values()):
                acknowledged += run["statuses"].get("201", 0)
            check = await verify(database_url, hot, HOT_CAPACITY, acknowledged)
            confirmed_rps = booking["confirmed_per_s"]
            rows.append(
                {
                    "backend": backend,
                    "connections": connections,
                    "ceiling_rps": round(ceiling["rps"], 1),
                    "ceiling_p99_ms": ceiling["p99_us"] / 1000,
                    "bookings_per_s": round(confirmed_rps, 1),
                    "p50_ms": booking["p50_us"] / 1000,
                    "p95_ms": booking["p95_us"] / 1000,
                    "p99_ms": booking["p99_us"] / 1000,
                    "ratio": round(confirmed_rps / ceiling["rps"], 3) if ceiling["rps"] else 0.0,
                    "cpu_ms": booking["cpu_ms"],
                    "floors": {
                        name: {
                            "bookings_per_s": round(run["confirmed_per_s"], 1),
                            "ratio": round(run["confirmed_per_s"] / ceiling["rps"], 3),
                            "cpu_ms": run["cpu_ms"],
                        }
                        for name, run in floor_runs.items()
                    },
                    "non_201": {k: v for k, v in booking["statuses"].items() if k != "201"},
                    "socket_errors": sum(booking["errors"].values()) - booking["errors"]["status"],
                    "verified": check["ok"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            if not check["ok"]:
                raise SystemExit(
                    f"verification failed on {backend} at {connections} connections: {check}"
                )
        for floor in floors.values():
            floor.terminate()
        floors = {}
        sellout = await sell_out(server, database_url, organizer, wrk_env, args)
    finally:
        for floor in floors.values():
            floor.terminate()
        if server.proc and server.proc.poll() is None:
            server.terminate()
        if backend == "postgresql":
            drop_postgres(database_url)
    return {"rows": rows, "sellout": sellout}


def start_floor(name: str, database_url: str, workers: int) -> Server:
    """One app of bench/floor.py (the booking's I/O alone, or routed by FastAPI), served by
    uvicorn with the same settings as `ticketboss serve`."""
    floor = Server(database_url, workers=workers, redis_url=REDIS_URL)
    floor.command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH),
        f"floor:{FLOORS[name]}",
        "--port",
        str(floor.port),
        "--workers",
        str(workers),
        "--timeout-keep-alive",
        "75",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return floor.start()


async def sell_out(
    server: Server,
    database_url: str,
    organizer: Account,
    wrk_env: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    capacity = 1000
    event_id = await new_event(server, organizer, capacity)
    result = wrk(server.base_url, "booking.lua", 64, 10, wrk_env | {"EVENT_ID": event_id})
    sold = result["statuses"].get("201", 0)
    refused = result["statuses"].get("409", 0)
    check = await verify(database_url, event_id, capacity, sold)
    other = {k: v for k, v in result["statuses"].items() if k not in ("201", "409")}
    outcome = {
        "capacity": capacity,
        "sold": sold,
        "refused_409": refused,
        "other_statuses": other,
        "sold_out_in_s": round(await sell_out_window(database_url, event_id), 3),
        "verified": check["ok"] and sold == capacity and not other,
    }
    print(json.dumps({"sellout": outcome}), flush=True)
    if not outcome["verified"]:
        raise SystemExit(f"sell-out verification failed: {outcome} {check}")
    return outcome


def write_reports(results: dict[str, Any], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Benchmark results",
        "",
        f"{results['machine']} · {args.workers} uvicorn workers · Redis on · rate limits off · "
        f"wrk {args.duration}s per run, load generator on the same machine. Ratio = confirmed bookings/s ÷ /health req/s of the same run.",
        "",
        "Floors (bench/floor.py, PostgreSQL only, same run): the same Redis and PostgreSQL round trips per booking "
        "with no auth, idempotency rules, logging or metrics; *bare* is a plain ASGI app, *fastapi* routes the "
        "request and validates its body with FastAPI. Their ratios use the real app's /health of the same row.",
        "",
        "| backend | conns | /health req/s | bookings/s | ratio | p50 ms | p95 ms | p99 ms | floor bare/s (ratio) | floor fastapi/s (ratio) | non-201 | verified |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for backend, data in results["backends"].items():
        for r in data["rows"]:
            floor_cells = " | ".join(
                f"{f['bookings_per_s']:.0f} ({f['ratio']:.2f})"
                if (f := r["floors"].get(name))
                else "-"
                for name in FLOORS
            )
            lines.append(
                f"| {backend} | {r['connections']} | {r['ceiling_rps']:.0f} | {r['bookings_per_s']:.0f} | {r['ratio']:.2f} | "
                f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {floor_cells} | {r['non_201'] or '-'} | {'yes' if r['verified'] else 'NO'} |"
            )
    lines += [
        "",
        "## CPU per confirmed booking (ms, during each booking run)",
        "",
        "Server = uvicorn's processes (supervisor and workers), PostgreSQL = every `postgres` "
        "process, Redis = `redis-server`, all from /proc; wrk = the load generator's own CPU. "
        "The floor columns are the floors' server processes.",
        "",
        "| backend | conns | server | PostgreSQL | Redis | wrk | floor "
        + " | floor ".join(FLOORS)
        + " |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(FLOORS),
    ]
    for backend, data in results["backends"].items():
        for r in data["rows"]:
            cpu = r["cpu_ms"]
            postgres = _ms(cpu["postgres"]) if backend == "postgresql" else "-"
            floor_cpu = " | ".join(
                _ms(f["cpu_ms"]["server"]) if (f := r["floors"].get(name)) else "-"
                for name in FLOORS
            )
            lines.append(
                f"| {backend} | {r['connections']} | {_ms(cpu['server'])} | {postgres} | "
                f"{_ms(cpu['redis'])} | {_ms(cpu['wrk'])} | {floor_cpu} |"
            )
    lines += [
        "",
        "## Sell-out (capacity 1,000, 64 connections, 10 s of demand)",
        "",
        "| backend | sold | clean 409s | other | sold out in | verified |",
        "|---|---:|---:|---|---:|---|",
    ]
    for backend, data in results["backends"].items():
        s = data["sellout"]
        lines.append(
            f"| {backend} | {s['sold']} | {s['refused_409']} | {s['other_statuses'] or '-'} | {s['sold_out_in_s']} s | {'yes' if s['verified'] else 'NO'} |"
        )
    (RESULTS / "results.md").write_text("\n".join(lines) + "\n")
    plot(results)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for backend, data in results["backends"].items():
        conns = [r["connections"] for r in data["rows"]]
        for key, style in (("p50_ms", "--"), ("p99_ms", "-")):
            ax.plot(
                conns,
                [r[key] for r in data["rows"]],
                style,
                marker="o",
                label=f"{backend} {key.removesuffix('_ms')}",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("booking latency (ms)")
    ax.set_title("POST /api/v1/bookings latency vs concurrency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the floors of bench/floor.py (the booking's I/O without the stack)",
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    import platform

    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for backend in args.backends.split(","):
            results["backends"][backend] = asyncio.run(bench_backend(backend, args, Path(scratch)))
    write_reports(results, args)
    print(f"wrote {RESULTS}/results.json, results.md, latency.png")


if __name__ == "__main__":
    main()
