"""The process that keeps `ticketboss serve --workers N` at N workers: uvicorn's, saying at
warning level when a worker died and which one replaced it, and giving a starting worker
time to start.

uvicorn pings every worker each half second and kills one that does not answer within
WORKER_HEALTHCHECK_SECONDS. A worker answers from a thread it starts only after its imports,
so on a loaded machine (measured: load average 17 on 2 cores, under a soak's 10,000
connections) a replacement still importing was killed, and its replacement too, thirteen in
eight minutes. Until a worker first answers, it is only required to be alive, for at most
WORKER_STARTUP_SECONDS; from its first answer on, uvicorn's rule applies.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("uvicorn.error")


class Supervisor(Multiprocess):
    def __init__(self, *args: Any, startup_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.startup_seconds = startup_seconds
        self.starting: dict[int, tuple[float, bool]] = {}
        """id(process) → (when first seen, whether a ping is outstanding); -1: it answered."""

    def keep_subprocess_alive(self) -> None:
        """uvicorn's, but a worker that has not answered yet only has to be alive."""
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if self._still_starting(process):
                if process.process.is_alive():
                    continue
            elif process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            self.starting.pop(id(process), None)
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker %s failed to start, stopping the server", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            replacement = Process(self.config, self.sockets)
            replacement.start()
            self.processes[idx] = replacement
            log.warning(
                "worker %s died (exit code %s); started worker %s in its place",
                process.pid,
                process.exitcode,
                replacement.pid,
            )

    def _still_starting(self, process: Process) -> bool:
        """Whether `process` has not answered a ping yet and is within its start-up time.
        One ping at a time is outstanding, read without waiting, so no stale answer piles up
        to hide a later hang."""
        first_seen, pinged = self.starting.setdefault(id(process), (time.monotonic(), False))
        if first_seen < 0:
            return False
        conn = process.parent_conn
        try:
            if not pinged:
                conn.send(b"ping")
                pinged = True
            if conn.poll(0):
                conn.recv()
                self.starting[id(process)] = (-1.0, False)
                return False
        except (OSError, EOFError):
            return False
        self.starting[id(process)] = (first_seen, pinged)
        return time.monotonic() - first_seen < self.startup_seconds
