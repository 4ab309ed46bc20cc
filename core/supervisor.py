"""The process that keeps `ticketboss serve --workers N` at N workers: uvicorn's, saying at
warning level when a worker died and which one replaced it."""

from __future__ import annotations

import logging

from uvicorn.supervisors.multiprocess import Multiprocess

log = logging.getLogger("uvicorn.error")


class Supervisor(Multiprocess):
    def keep_subprocess_alive(self) -> None:
        before = [(process.pid, process) for process in self.processes]
        super().keep_subprocess_alive()
        for (pid, old), new in zip(before, self.processes, strict=True):
            if new is not old:
                log.warning(
                    "worker %s died (exit code %s); started worker %s in its place",
                    pid,
                    old.exitcode,
                    new.pid,
                )
