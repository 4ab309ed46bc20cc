"""SQLite's writer lock across processes (core/storage/sql/base.WriterLock): a waiting writer
gets the lock as soon as the other process lets go, and one that gives up while waiting
leaves nothing held."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.storage.sql.base import WriterLock


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The lock file, and a descriptor of it holding the lock as another process would
    (flock conflicts between open file descriptions, in one process or several)."""
    path = str(tmp_path / "db.sqlite.writer-lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield path, fd
    os.close(fd)


async def test_a_writer_waits_for_the_other_process_and_then_writes(
    other_process: tuple[str, int],
) -> None:
    path, held = other_process
    lock = WriterLock(path)
    entered = asyncio.Event()

    async def write() -> None:
        async with lock:
            entered.set()

    task = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not entered.is_set()
    fcntl.flock(held, fcntl.LOCK_UN)
    async with asyncio.timeout(2):
        await task
    assert entered.is_set()
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released again after the write


async def test_a_writer_that_gives_up_while_waiting_holds_nothing(
    other_process: tuple[str, int],
) -> None:
    path, held = other_process
    lock = WriterLock(path)

    async def write() -> None:
        async with lock:
            pytest.fail("entered while the other process held the lock")

    task = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fcntl.flock(held, fcntl.LOCK_UN)
    async with asyncio.timeout(2):  # neither the file nor the process's own queue is left held
        async with lock:
            pass
    async with asyncio.timeout(2):
        while True:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)


async def test_writers_of_one_process_take_turns(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db.sqlite.writer-lock"))
    inside = 0
    most = 0

    async def write() -> None:
        nonlocal inside, most
        async with lock:
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(write() for _ in range(20)))
    assert most == 1
