"""Soak: a booking load under a crowd of idle connections and live streams (issue 29).

    uv run --group bench python bench/soak.py [--duration 120] [--idle 8000] [--streams 2000]
        [--connections 64] [--workers 2]

One real server (`ticketboss serve`, rate limits off) on a fresh PostgreSQL database and Redis.
Two phases of `--duration` seconds each, wrk driving POST /api/v1/bookings at `--connections`
on one hot event while a separate process probes GET /health (one request every 20 ms on a
keep-alive connection):

1. alone: the booking load and the probe only;
2. crowd: first `--idle` connections that send one GET /health and then sit idle (keep-alive),
   and `--streams` live availability streams on the hot event (every booking reaches all of
   them), then the same booking load; at the end each idle connection asks /health again.

Reported: /health p50/p99 and bookings/s in both phases, the server's RSS per 1,000 idle
connections and per 1,000 streams, the availability frames the streams received, errors by
status and kind, and the reconcile of the hot event (no drift, no oversell, every 201 stored).
Streams and idle connections come from many loopback addresses (127.1.x.y; 16 streams each,
the default STREAM_MAX_PER_IP).

Needs about idle + streams + 1,000 file descriptors in this process and as many in the server
(`ticketboss serve` raises its soft RLIMIT_NOFILE to the hard limit; this script does too):
`ulimit -Hn` ≥ 12,000 for the defaults, and net.ipv4.ip_local_port_range wide enough for
the connections from each source address. The full run (2 × 2 min) is for an idle machine;
on a shared one, a `--duration 30` run shows the shape.

Writes bench/results/soak.json and bench/results/soak.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import run as bench  # noqa: E402 (bench/run.py: wrk, accounts, the reconcile check)

from tests.support.server import Server  # noqa: E402

STREAMS_PER_ADDRESS = 16
PROBE_INTERVAL = 0.02
RAMP_BATCH = 500


def source(index: int) -> str:
    return f"127.1.{index // 250}.{index % 250 + 1}"


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def probe(port: int, seconds: float, out: Any) -> None:
    """GET /health every PROBE_INTERVAL on one keep-alive connection (reopened if lost)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    sock: socket.socket | None = None
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: soak\r\n\r\n")
            status = _read_response(sock)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors[str(status)] += 1
        except OSError as exc:
            errors[type(exc).__name__] += 1
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.close()
            sock = None
        time.sleep(PROBE_INTERVAL)
    out.put({"latencies": latencies, "errors": dict(errors)})


def _read_response(sock: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return int(head.split(b" ", 2)[1])


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


class Crowd:
    """Idle keep-alive connections and live streams, all in this process's event loop."""

    def __init__(self, port: int, event_id: str) -> None:
        self.port = port
        self.event_id = event_id
        self.outcomes: Counter[str] = Counter()
        self.frames = 0
        self.release = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def open_idle(self, count: int) -> None:
        for start in range(0, count, RAMP_BATCH):
            ready: list[asyncio.Future[None]] = []
            for i in range(start, min(count, start + RAMP_BATCH)):
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                ready.append(future)
                self.tasks.append(asyncio.create_task(self._idle(source(i // 64), future)))
            await asyncio.gather(*ready)

    async def open_streams(self, count: int) -> None:
        for start in range(0, count, RAMP_BATCH):
            ready: list[asyncio.Future[None]] = []
            for i in range(start, min(count, start + RAMP_BATCH)):
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                ready.append(future)
                address = source(i // STREAMS_PER_ADDRESS)
                self.tasks.append(asyncio.create_task(self._stream(address, future)))
            await asyncio.gather(*ready)

    async def _idle(self, address: str, ready: asyncio.Future[None]) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(address, 0)
            )
            self.outcomes[f"idle first {await _get(reader, writer, '/health')}"] += 1
            ready.set_result(None)
            await self.release.wait()
            self.outcomes[f"idle last {await _get(reader, writer, '/health')}"] += 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.outcomes[f"idle {type(exc).__name__}"] += 1
        finally:
            if not ready.done():
                ready.set_result(None)
            if writer is not None:
                writer.close()

    async def _stream(self, address: str, ready: asyncio.Future[None]) -> None:
        writer: asyncio.StreamWriter | None = None
        path = f"/api/v1/events/{self.event_id}/availability/stream"
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(address, 0)
            )
            writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
            self.outcomes[f"stream {status}"] += 1
            ready.set_result(None)
            if status != "200":
                return
            tail = b""
            while not self.release.is_set():
                chunk = await reader.read(65536)
                if not chunk:
                    self.outcomes["stream closed by server"] += 1
                    return
                chunk = tail + chunk
                self.frames += chunk.count(b"event: availability")
                tail = chunk[-24:]
                self.frames -= tail.count(b"event: availability")
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.outcomes[f"stream {type(exc).__name__}"] += 1
        finally:
            if not ready.done():
                ready.set_result(None)
            if writer is not None:
                writer.close()

    async def close(self) -> None:
        self.release.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*self.tasks, return_exceptions=True)


def server_rss_kb(server: Server) -> int:
    assert server.proc is not None
    total = 0
    for pid in bench.process_tree(server.proc.pid):
        status = bench._read(Path(f"/proc/{pid}/status"))
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(server: Server, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The booking load with the /health probe beside it, for --duration seconds."""
    spawn = multiprocessing.get_context("spawn")  # not a fork of this loop and its threads
    results: multiprocessing.Queue[dict[str, Any]] = spawn.Queue()
    prober = spawn.Process(target=probe, args=(server.port, args.duration, results))
    prober.start()
    assert server.proc is not None
    groups = {
        "server": lambda: bench.process_tree(server.proc.pid),  # type: ignore[union-attr]
        "postgres": lambda: bench.pids_named("postgres"),
    }
    before = {name: bench.cpu_seconds(find()) for name, find in groups.items()}
    client_before = _own_cpu()
    booking = await asyncio.to_thread(
        bench.wrk, server.base_url, "booking.lua", args.connections, args.duration, env
    )
    cpu = {"crowd client": round(_own_cpu() - client_before, 1)}
    for name, find in groups.items():
        after = bench.cpu_seconds(find())
        cpu[name] = round(sum(used - before[name].get(pid, 0.0) for pid, used in after.items()), 1)
    probed = results.get(timeout=60)
    prober.join(10)
    latencies = probed["latencies"]
    seconds = booking["duration_us"] / 1e6
    return {
        "bookings_per_s": round(booking["statuses"].get("201", 0) / seconds, 1),
        "bookings_p99_ms": round(booking["p99_us"] / 1000, 1),
        "booking_statuses": booking["statuses"],
        "booking_socket_errors": {k: v for k, v in booking["errors"].items() if v},
        "health_probes": len(latencies),
        "health_p50_ms": _ms(percentile(latencies, 0.50)),
        "health_p99_ms": _ms(percentile(latencies, 0.99)),
        "health_median_ms": _ms(statistics.median(latencies) if latencies else None),
        "health_errors": probed["errors"],
        "confirmed": booking["statuses"].get("201", 0),
        "cpu_seconds": cpu,
    }


def _own_cpu() -> float:
    """CPU seconds of this process: the crowd's clients, which share the machine's cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 2) if seconds is not None else None


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_open_files()
    needed = args.idle + args.streams + 1000
    if limit < needed:
        raise SystemExit(f"RLIMIT_NOFILE is {limit}; this run needs {needed} (ulimit -Hn)")
    database_url = bench.fresh_postgres()
    scratch = Path(tempfile.mkdtemp(prefix="soak-"))
    env = {
        "ACCESS_TOKEN_TTL_SECONDS": "7200",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(BENCH.parent),
    }
    server = Server(database_url, workers=args.workers, redis_url=args.redis_url, **env)
    # idle keep-alive connections stay open for the whole crowd phase
    server.command += ["--keep-alive", str(args.duration * 2 + 120)]
    try:
        server.start(timeout=300)
        tokens, organizer = await bench.prepare(server, database_url, users=50)
        tokens_file = scratch / "tokens.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        event_id = await bench.new_event(server, organizer, bench.HOT_CAPACITY)
        wrk_env = {
            "PATH": "/usr/bin:/bin",
            "TOKENS_FILE": str(tokens_file),
            "EVENT_ID": event_id,
            "BENCH_DIR": str(BENCH),
        }
        alone = await phase(server, wrk_env, args)
        crowd = Crowd(server.port, event_id)
        rss_before = server_rss_kb(server)
        await crowd.open_idle(args.idle)
        rss_idle = server_rss_kb(server)
        await crowd.open_streams(args.streams)
        rss_streams = server_rss_kb(server)
        async with asyncio.timeout(60):  # every stream's first frame: the state at connect
            while crowd.frames < crowd.outcomes["stream 200"]:  # noqa: ASYNC110 - a count
                await asyncio.sleep(0.1)
        frames_before = crowd.frames
        crowded = await phase(server, wrk_env, args)
        crowded["stream_frames_received"] = crowd.frames - frames_before
        await crowd.close()
        confirmed = alone["confirmed"] + crowded["confirmed"]
        check = await bench.verify(database_url, event_id, bench.HOT_CAPACITY, confirmed)
        return {
            "duration_s": args.duration,
            "workers": args.workers,
            "connections": args.connections,
            "idle": args.idle,
            "streams": args.streams,
            "open_files_limit": limit,
            "alone": alone,
            "crowd": crowded,
            "crowd_outcomes": dict(sorted(crowd.outcomes.items())),
            "rss_mb": {
                "before_crowd": round(rss_before / 1024, 1),
                "with_idle": round(rss_idle / 1024, 1),
                "with_streams": round(rss_streams / 1024, 1),
            },
            "rss_kb_per_1000_idle": round((rss_idle - rss_before) * 1000 / max(args.idle, 1)),
            "rss_kb_per_1000_streams": round(
                (rss_streams - rss_idle) * 1000 / max(args.streams, 1)
            ),
            "reconcile": check,
        }
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()
        bench.drop_postgres(database_url)
        shutil.rmtree(scratch, ignore_errors=True)


def write(results: dict[str, Any]) -> None:
    bench.RESULTS.mkdir(exist_ok=True)
    (bench.RESULTS / "soak.json").write_text(json.dumps(results, indent=2) + "\n")
    alone, crowd = results["alone"], results["crowd"]
    ratio = crowd["bookings_per_s"] / alone["bookings_per_s"] if alone["bookings_per_s"] else None
    lines = [
        "# Soak: bookings under a crowd (bench/soak.py)",
        "",
        f"{results['duration_s']} s per phase, {results['workers']} workers, PostgreSQL + Redis, "
        f"wrk at {results['connections']} connections; crowd: {results['idle']} idle keep-alive "
        f"connections + {results['streams']} live streams on the booked event; "
        f"RLIMIT_NOFILE {results['open_files_limit']}.",
        "",
        "| | alone | crowd |",
        "|---|---|---|",
        f"| confirmed bookings/s | {alone['bookings_per_s']} | {crowd['bookings_per_s']} "
        f"({ratio:.2f}×) |"
        if ratio is not None
        else f"| confirmed bookings/s | {alone['bookings_per_s']} | {crowd['bookings_per_s']} |",
        f"| booking p99 ms | {alone['bookings_p99_ms']} | {crowd['bookings_p99_ms']} |",
        f"| /health p50 ms | {alone['health_p50_ms']} | {crowd['health_p50_ms']} |",
        f"| /health p99 ms | {alone['health_p99_ms']} | {crowd['health_p99_ms']} |",
        f"| booking statuses | {alone['booking_statuses']} | {crowd['booking_statuses']} |",
        f"| booking socket errors | {alone['booking_socket_errors']} "
        f"| {crowd['booking_socket_errors']} |",
        f"| /health probe errors | {alone['health_errors']} | {crowd['health_errors']} |",
        f"| CPU seconds used | {alone['cpu_seconds']} | {crowd['cpu_seconds']} |",
        "",
        f"Crowd outcomes: {results['crowd_outcomes']}; availability frames received by the "
        f"streams during the crowd phase: {crowd['stream_frames_received']}.",
        "",
        f"Server RSS (all processes): {results['rss_mb']} MB; "
        f"{results['rss_kb_per_1000_idle']} kB per 1,000 idle connections, "
        f"{results['rss_kb_per_1000_streams']} kB per 1,000 streams.",
        "",
        f"Reconcile of the hot event: {results['reconcile']}.",
        "",
    ]
    (bench.RESULTS / "soak.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", type=int, default=120, help="seconds per phase")
    parser.add_argument("--idle", type=int, default=8000, help="idle keep-alive connections")
    parser.add_argument("--streams", type=int, default=2000, help="live streams")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-url", default=bench.REDIS_URL)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    results = asyncio.run(soak(args))
    write(results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
