"""POST /reservations side by side: TicketBoss (PostgreSQL + Redis, durable) against two public
in-memory implementations of the same partner contract, in the same run, round by round.

    uv run --group bench python bench/peers.py [--node SRC] [--fastapi SRC]
        [--duration 3] [--rounds 2] [--concurrency 16,64] [--workers 2] [--redis-db 11]

SRC is a clone URL, a bare git repository or a source folder; it is copied into a scratch
folder, never run in place:
- `--node`: ManiKumarBaitha/TicketBoss (Node/Express, one process, a Map in memory); its
  dependencies come from npm (`npm install --omit=dev`), node from Debian (`apt-get install
  nodejs npm`).
- `--fastapi`: howdikshant/TicketBoss (FastAPI, one uvicorn process, a dict behind a lock),
  served with this project's environment (it needs only fastapi, jinja2, uvicorn).
Both seed 500 seats; the copy's seed is raised to 100,000,000 so they never sell out and
every answer is a 201, as TicketBoss's contract event is. Each runs as its authors ship it
(their request logging included; TicketBoss keeps its access logs on too). They keep state in
one process, so they run one process; TicketBoss runs `--workers` workers.

Reported per connection count: confirmed (201) answers per second, p99, CPU per answer (the
server's process tree; for TicketBoss also PostgreSQL and Redis), and TicketBoss ÷ each peer.
Writes bench/results/peers.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from run import (  # bench/ is this script's folder, so on sys.path
    BENCH,
    CONTRACT_SEATS,
    REDIS_DB,
    RESULTS,
    ROOT,
    Variant,
    _children_cpu_seconds,
    cpu_seconds,
    pids_named,
    process_tree,
    wrk,
)

NODE_SOURCE = "https://github.com/ManiKumarBaitha/TicketBoss"
FASTAPI_SOURCE = "https://github.com/howdikshant/TicketBoss"
EVENT = "node-meetup-2025"


def unpack(source: str, target: Path) -> Path:
    """A copy of `source` (URL, bare repository or folder) in `target`."""
    target.mkdir(parents=True)
    src = Path(source)
    if src.is_dir() and (src / "HEAD").exists() and (src / "objects").is_dir():  # bare
        archive = subprocess.run(
            ["git", "--git-dir", str(src), "archive", "HEAD"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    elif src.is_dir():
        shutil.copytree(src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    else:
        subprocess.run(["git", "clone", "--depth", "1", "-q", source, str(target)], check=True)
    return target


def raise_seed(path: Path, pattern: str, replacement: str) -> None:
    """Patch the copy's seed; fail loudly if the peer's code no longer looks as expected."""
    text = path.read_text()
    patched, count = re.subn(pattern, replacement, text)
    if not count:
        raise SystemExit(f"cannot raise the seed in {path}: {pattern!r} not found")
    path.write_text(patched)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peer:
    """One in-memory implementation, started from its scratch copy."""

    def __init__(self, name: str, root: Path, command: list[str], path: str, summary: str):
        self.name, self.root, self.command = name, root, command
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.path, self.summary = path, summary
        self.proc: subprocess.Popen[bytes] | None = None
        self.acknowledged = 0

    def start(self) -> Peer:
        env = {**os.environ, "PORT": str(self.port), "NODE_ENV": "production"}
        log = (self.root / "server.log").open("ab")
        cmd = [c.replace("{port}", str(self.port)) for c in self.command]
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited: {(self.root / 'server.log').read_text()}")
            try:
                httpx.get(self.base_url + self.summary, timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer in 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(20)

    def sold(self) -> int:
        body = httpx.get(self.base_url + self.summary, timeout=30).json()
        return int(body["totalSeats"]) - int(body["availableSeats"])


def node_peer(source: str, scratch: Path) -> Peer:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("node is not installed: apt-get install -y nodejs npm")
    root = unpack(source, scratch / "node")
    raise_seed(
        root / "src" / "database.js",
        r"(totalSeats|availableSeats): 500\b",
        rf"\1: {CONTRACT_SEATS}",
    )
    subprocess.run(
        ["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--silent"],
        cwd=root,
        check=True,
    )
    return Peer(
        "node-express", root, ["node", "src/server.js"], "/reservations", f"/reservations/{EVENT}"
    )


def fastapi_peer(source: str, scratch: Path) -> Peer:
    root = unpack(source, scratch / "fastapi")
    raise_seed(root / "main.py", r"TOTAL_SEATS = 500\b", f"TOTAL_SEATS = {CONTRACT_SEATS}")
    command = [sys.executable, "-m", "uvicorn", "main:app", "--port", "{port}"]
    return Peer("fastapi-memory", root, command, "/reservations/", "/reservations/")


def drive(
    url: str,
    pids: list[int],
    extra: dict[str, list[int]],
    args: argparse.Namespace,
    connections: int,
    env: dict[str, str],
) -> dict[str, Any]:
    """wrk against one server's POST /reservations; its 201s per second and CPU per 201."""
    groups = {"server": pids, **extra}
    before = {name: cpu_seconds(p) for name, p in groups.items()}
    wrk_before = _children_cpu_seconds()
    result = wrk(url, "reservation.lua", connections, args.duration, env)
    spent = {"wrk": _children_cpu_seconds() - wrk_before}
    for name, p in groups.items():
        after = cpu_seconds(p)
        spent[name] = sum(used - before[name].get(pid, 0.0) for pid, used in after.items())
    confirmed = result["statuses"].get("201", 0)
    return {
        "confirmed": confirmed,
        "per_s": round(confirmed / (result["duration_us"] / 1e6), 1),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_ms": {
            k: round(v * 1000 / confirmed, 3) if confirmed else None for k, v in spent.items()
        },
        "non_201": {k: v for k, v in result["statuses"].items() if k != "201"},
        "socket_errors": sum(result["errors"].values()) - result["errors"]["status"],
    }


async def bench(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    ours = Variant("ticketboss", ROOT)
    peers = [node_peer(args.node, scratch), fastapi_peer(args.fastapi, scratch)]
    runs: list[dict[str, Any]] = []
    try:
        await ours.start("postgresql", args, scratch)
        assert ours.server is not None and ours.server.proc is not None
        for peer in peers:
            peer.start()
        base_env = {"PATH": "/usr/bin:/bin", "BENCH_DIR": str(BENCH)}
        for peer in peers:  # warm up: code paths hot (ours below, pools filled too)
            env = base_env | {"RESERVATIONS_PATH": peer.path}
            peer.acknowledged += wrk(peer.base_url, "reservation.lua", 16, 3, env)["statuses"].get(
                "201", 0
            )
        env = base_env | {"RESERVATIONS_PATH": "/reservations"}
        ours.acknowledged["reservations"] += wrk(
            ours.server.base_url, "reservation.lua", 16, 3, env
        )["statuses"].get("201", 0)
        for connections in args.concurrency:
            for _ in range(args.rounds):
                # ours first, then each peer: interleaved, so drift falls on all alike
                pids = process_tree(ours.server.proc.pid)
                extra = {"postgres": pids_named("postgres"), "redis": pids_named("redis-server")}
                env = base_env | {"RESERVATIONS_PATH": "/reservations"}
                row = drive(ours.server.base_url, pids, extra, args, connections, env)
                runs.append({"server": "ticketboss", "connections": connections, **row})
                print(json.dumps(runs[-1]), flush=True)
                ours.acknowledged["reservations"] += row["confirmed"]
                for peer in peers:
                    assert peer.proc is not None
                    env = base_env | {"RESERVATIONS_PATH": peer.path}
                    row = drive(
                        peer.base_url, process_tree(peer.proc.pid), {}, args, connections, env
                    )
                    runs.append({"server": peer.name, "connections": connections, **row})
                    print(json.dumps(runs[-1]), flush=True)
                    peer.acknowledged += row["confirmed"]
        checks = {"ticketboss": await ours.check("reservations", EVENT, CONTRACT_SEATS)}
        for peer in peers:
            sold = peer.sold()
            # wrk stops with requests in flight: they are sold, and not counted as 201s
            checks[peer.name] = {"sold": sold, "ok": peer.acknowledged <= sold}
        checks = {
            k: v | {"ok": v["ok"] and not any(r["non_201"] for r in runs if r["server"] == k)}
            for k, v in checks.items()
        }
    finally:
        for peer in peers:
            peer.stop()
        ours.stop("postgresql")
    return {"runs": runs, "rows": summarise(runs), "checks": checks}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["server"], run["connections"]), []).append(run)
    rows = []
    for (server, connections), group in groups.items():
        med = partial(_median, group)
        rows.append(
            {
                "server": server,
                "connections": connections,
                "rounds": len(group),
                "per_s": med(lambda r: r["per_s"]),
                "p99_ms": med(lambda r: r["p99_ms"]),
                "server_cpu_ms": med(lambda r: r["cpu_ms"]["server"] or 0),
                "all_cpu_ms": med(
                    lambda r: sum(v or 0 for k, v in r["cpu_ms"].items() if k != "wrk")
                ),
                "non_201": sum(sum(r["non_201"].values()) for r in group),
                "socket_errors": sum(r["socket_errors"] for r in group),
            }
        )
    return rows


def _median(group: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> float:
    return round(statistics.median(value(r) for r in group), 3)


def write(results: dict[str, Any], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# POST /reservations: TicketBoss against in-memory peers",
        "",
        f"{results['machine']} · TicketBoss: {args.workers} uvicorn workers, PostgreSQL + "
        "Redis, durable, access logs on · peers: one process each, in memory, as shipped · "
        f"wrk {args.duration} s per run on the same machine · median of {args.rounds} "
        "interleaved rounds. CPU = ms per 201: the server's processes (TicketBoss: + "
        "PostgreSQL + Redis in the last column).",
        "",
        "| conns | server | 201/s | p99 ms | server CPU ms | all CPU ms | non-201 | socket errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['connections']} | {r['server']} | {r['per_s']:,.0f} | {r['p99_ms']:.1f} | "
            f"{r['server_cpu_ms']:.3f} | {r['all_cpu_ms']:.3f} | {r['non_201']} | "
            f"{r['socket_errors']} |"
        )
    lines += [
        "",
        "| conns | TicketBoss ÷ node-express | TicketBoss ÷ fastapi-memory |",
        "|---:|---:|---:|",
    ]
    by = {(r["server"], r["connections"]): r for r in results["rows"]}
    for connections in args.concurrency:
        ours = by[("ticketboss", connections)]["per_s"]
        ratios = [
            ours / by[(p, connections)]["per_s"] if by[(p, connections)]["per_s"] else 0.0
            for p in ("node-express", "fastapi-memory")
        ]
        lines.append(f"| {connections} | ×{ratios[0]:.2f} | ×{ratios[1]:.2f} |")
    lines += [
        "",
        "Checks (sold = every 201 stored, nothing oversold): " + json.dumps(results["checks"]),
    ]
    (RESULTS / "peers.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--node", default=NODE_SOURCE, help="clone URL, bare repo or folder")
    parser.add_argument("--fastapi", default=FASTAPI_SOURCE, help="clone URL, bare repo or folder")
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--workers", type=int, default=2, help="TicketBoss's uvicorn workers")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB)
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    import platform

    with tempfile.TemporaryDirectory() as scratch:
        results = asyncio.run(bench(args, Path(scratch)))
    results["machine"] = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    bad = {k: v for k, v in results["checks"].items() if not v["ok"]}
    write(results, args)
    print(f"wrote {RESULTS}/peers.json, peers.md")
    if bad:
        raise SystemExit(f"verification failed: {bad}")


if __name__ == "__main__":
    main()
