"""Run the real server (`ticketboss serve`, uvicorn workers) in a subprocess for race tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


class Server:
    def __init__(
        self,
        database_url: str,
        *,
        workers: int = 2,
        redis_url: str | None = None,
        host: str | None = None,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DATABASE_URL": database_url,
            "RATE_LIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "JWT_SECRET": "race-test-secret-0123456789-0123456789",
            **({"REDIS_URL": redis_url} if redis_url else {}),
            **env,
        }
        self.command = [
            sys.executable,
            *("-m", "modules.cli", "serve"),
            *("--port", str(self.port), "--workers", str(workers)),
            *(("--host", host) if host else ()),
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.cwd = ROOT
        self.log = ROOT / "data" / f"race-server-{self.port}.log"

    def start(self, timeout: float = 120) -> Server:
        """Start and wait for /health. On failure the whole process group is killed first:
        `with Server(...)` does not exit a server whose start raised, and a half-started one
        would keep its workers running (and loading a shared machine) after the test."""
        self.log.parent.mkdir(exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._kill_group()
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server did not become healthy in {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs anywhere."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def _kill_group(self) -> None:
        """SIGKILL what is left of the group once its leader has exited (workers, if any)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def terminate(self, timeout: float = 40) -> int:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.terminate(15)
            except subprocess.TimeoutExpired:
                self.kill()
