"""The `ticketboss` command line against a real SQLite file: seed, create-admin, reconcile, expire-holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx

from core import clock
from core.storage import build_storage
from core.storage.requests import EventQuery, ReserveRequest
from tests.support.drift import corrupt_counter
from tests.support.server import Server

ROOT = Path(__file__).resolve().parents[1]


def ticketboss(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modules.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_seed_is_safe_to_run_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    first, second = ticketboss(url, "seed"), ticketboss(url, "seed")
    assert first.returncode == second.returncode == 0
    assert first.stdout.count("created") == 3 and second.stdout.count("exists") == 3

    async def published() -> list[tuple[str, tuple[str, ...]]]:
        storage = build_storage(url)
        try:
            events = await storage.events.find(EventQuery(limit=10))
        finally:
            await storage.close()
        return [(e.id, tuple(t.code for t in e.tiers)) for e in events]

    assert asyncio.run(published()) == [
        (f"demo-{i}", ("VIP", "FRONT_ROW", "GA")) for i in (1, 2, 3)
    ]


def test_seeded_events_show_dollar_prices_and_plain_text(tmp_path: Path) -> None:
    """Through the real server: the concert's VIP tier costs $50.00 (5000 cents, not 100× that),
    and the description has no Markdown the event page would show raw (it renders text)."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert ticketboss(url, "seed").returncode == 0
    with Server(url, workers=1) as server:
        answer = httpx.get(f"{server.base_url}/api/v1/events/demo-1", timeout=10)
    assert answer.status_code == 200
    event = answer.json()["data"]
    assert {t["code"]: t["priceCents"] for t in event["tiers"]} == {
        "VIP": 50_00,
        "FRONT_ROW": 35_00,
        "GA": 20_00,
    }
    assert event["description"] and not set("`*_#[]") & set(event["description"])


def test_create_admin_creates_then_promotes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    made = ticketboss(
        url, "create-admin", "--email", "Boss@Example.com", "--password", "long enough secret"
    )
    assert made.returncode == 0 and "created admin boss@example.com" in made.stdout
    again = ticketboss(
        url, "create-admin", "--email", "boss@example.com", "--password", "long enough secret"
    )
    assert again.returncode == 0 and "promoted" in again.stdout
    short = ticketboss(url, "create-admin", "--email", "x@example.com", "--password", "short")
    assert short.returncode != 0 and "at least 10" in short.stderr
    assert "long enough secret" not in made.stdout + made.stderr


def test_reconcile_reports_and_repairs_drift_and_expire_holds_releases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    assert ticketboss(url, "seed").returncode == 0

    async def book_and_corrupt() -> None:
        storage = build_storage(url)
        try:
            now = clock.now()
            await storage.bookings.reserve(ReserveRequest("demo-1", "GA", 3, "buyer", now))
            await storage.bookings.reserve(
                ReserveRequest(
                    "demo-1", "VIP", 2, "buyer", now, hold_until=now + timedelta(milliseconds=50)
                )
            )
            await corrupt_counter(url, "demo-1", "GA", 7)
        finally:
            await storage.close()

    asyncio.run(book_and_corrupt())
    asyncio.run(asyncio.sleep(0.1))
    released = ticketboss(url, "expire-holds")
    assert released.returncode == 0 and "released 1 expired hold" in released.stdout
    report = ticketboss(url, "reconcile")
    assert report.returncode == 1 and "drift demo-1 tier GA: counter 7, bookings 3" in report.stdout
    fixed = ticketboss(url, "reconcile", "--fix")
    assert fixed.returncode == 0 and "repaired" in fixed.stdout
    clean = ticketboss(url, "reconcile")
    assert clean.returncode == 0 and "no drift" in clean.stdout


def test_prune_changes_keeps_the_retention_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prune.db'}"
    assert ticketboss(url, "seed").returncode == 0  # three events: created and published
    kept = ticketboss(url, "prune-changes")
    assert kept.returncode == 0 and "pruned 0 change record(s)" in kept.stdout
    env = {**os.environ, "DATABASE_URL": url, "CHANGE_RETENTION_DAYS": "0.000001"}
    pruned = subprocess.run(
        [sys.executable, "-m", "modules.cli", "prune-changes"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pruned.returncode == 0 and "pruned 6 change record(s)" in pruned.stdout


def test_serve_raises_the_open_files_limit_to_the_hard_limit() -> None:
    import resource

    from modules.cli import _raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        _raise_open_files_limit()
        raised, still_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert still_hard == hard
    assert raised == (hard if hard != resource.RLIM_INFINITY else max(lowered, 1 << 20))
    assert raised > lowered or hard == lowered
