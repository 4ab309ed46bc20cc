"""A worker killed with SIGKILL under load is replaced (issue 29): the real `ticketboss serve`
with two workers, clients asking all along; the server is back at two workers, answers, and
says at warning level which worker died and which replaced it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest

from tests.support.processes import worker_pids
from tests.support.server import Server

pytestmark = pytest.mark.sqlite


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(
    tmp_path: pytest.TempPathFactory,
) -> None:
    with Server(f"sqlite:///{tmp_path}/recover.db", workers=2) as server:
        assert server.proc is not None
        deadline = time.monotonic() + 60
        while len(before := worker_pids(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(before) == 2
        statuses: Counter[int | str] = Counter()
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                while not stop.is_set():
                    try:
                        statuses[client.get("/api/v1/events").status_code] += 1
                    except httpx.HTTPError as exc:
                        statuses[type(exc).__name__] += 1

        clients = [threading.Thread(target=load) for _ in range(4)]
        for thread in clients:
            thread.start()
        try:
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                after = worker_pids(server.proc.pid)
                if len(after) == 2 and victim not in after:
                    break
                time.sleep(0.3)
            assert len(after) == 2 and victim not in after, after
            answered = statuses[200]
            deadline = time.monotonic() + 30
            while statuses[200] < answered + 20 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        assert statuses[200] >= answered + 20, statuses
        assert set(statuses) <= {200, "ReadError", "RemoteProtocolError", "ConnectError"}
        log = server.log.read_text()
        assert f"worker {victim} died" in log
        assert "WARNING" in log.split(f"worker {victim} died")[0].rsplit("\n", 1)[-1]


def test_starting_workers_are_not_killed_for_a_short_health_check(
    tmp_path: pytest.TempPathFactory,
) -> None:
    """WORKER_HEALTHCHECK_SECONDS=1 is shorter than a worker's imports: uvicorn's rule alone
    killed each starting worker before it could answer, and the next one (never healthy).
    Until its first answer a worker need only be alive (WORKER_STARTUP_SECONDS)."""
    with Server(
        f"sqlite:///{tmp_path}/start.db", workers=2, WORKER_HEALTHCHECK_SECONDS="1"
    ) as server:
        assert server.proc is not None
        deadline = time.monotonic() + 60
        while len(worker_pids(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(worker_pids(server.proc.pid)) == 2
        assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    assert "died" not in server.log.read_text()
