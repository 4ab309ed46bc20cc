"""bench/race.py, the standalone race for any deployment, run against the real server."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.support.races import account, hot_event
from tests.support.server import ROOT, Server


async def test_the_race_script_passes_on_a_correct_deployment(sqlite_url: str) -> None:
    env = {"TICKETBOSS_ANONYMOUS_PARTNERS": "true", "TICKETBOSS_TOTAL_SEATS": "120"}
    with Server(sqlite_url, **env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            organizer = await account(http, sqlite_url, "organizer")
            tiers = [{"code": "GA", "name": "GA", "priceCents": 100, "capacity": 90}]
            event_id = await hot_event(http, organizer, tiers)
        command = [sys.executable, str(ROOT / "bench" / "race.py"), "--url", server.base_url]
        ran = subprocess.run(
            [*command, "--clients", "80", "--event", event_id, "--register", "5"],
            capture_output=True,
            text=True,
            timeout=180,
        )
    print(ran.stdout)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "reservations: 80 requests" in ran.stdout and "bookings: 80 requests" in ran.stdout
    assert "all checks passed" in ran.stdout
