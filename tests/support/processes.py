"""The worker processes of a running `ticketboss serve --workers N` (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def worker_pids(supervisor_pid: int) -> set[int]:
    """The supervisor's spawned workers (not multiprocessing's resource tracker)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == supervisor_pid and b"spawn_main" in cmdline:
            if b"resource_tracker" not in cmdline:
                pids.add(int(stat.parent.name))
    return pids


def flock_waiters() -> set[int]:
    """The processes blocked waiting for a flock (Linux /proc/locks: `N: -> FLOCK …`)."""
    waiters = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[2] == "FLOCK":
            waiters.add(int(fields[5]))
    return waiters
