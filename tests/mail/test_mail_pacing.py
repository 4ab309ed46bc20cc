"""Sales come first: while requests keep arriving at a process, its mail sender waits a turn
(1 / MAIL_BUSY_PER_SECOND) before each message and claims only a second's worth; with no
request since its last message it sends back to back. Nothing is skipped either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from core.middleware import WorkerLoad
from core.storage import ManagedStorage, build_storage
from core.storage.records import new_id
from modules.notifications.outbox import new_mail
from modules.notifications.sender import Sender
from tests.support.api import make_settings

pytestmark = pytest.mark.sqlite


class Recorder:
    """The transport and the pause: which messages went out, and the turns waited."""

    def __init__(self, load: WorkerLoad, arriving: bool) -> None:
        self.load, self.arriving = load, arriving
        self.sent: list[str] = []
        self.pauses: list[float] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(str(message["To"]))
        if self.arriving:  # a request began while this message was being sent
            self.load.begun += 1

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[ManagedStorage]:
    managed = build_storage(f"sqlite:///{tmp_path / 'mail.db'}")
    await managed.migrate()
    yield managed
    await managed.close()


async def sender_with(
    storage: ManagedStorage, arriving: bool, mails: int
) -> tuple[Sender, Recorder, set[str]]:
    settings = make_settings("sqlite://", mail_busy_per_second=4)
    load = WorkerLoad()
    recorder = Recorder(load, arriving)
    sender = Sender(storage, settings, recorder, load=load, pause=recorder.pause)
    params = {"name": "Ada", "link": "http://127.0.0.1:8000/reset-password#token=t", "minutes": 30}
    batch = [
        new_mail(
            f"{new_id()}-reset", "password_reset", f"u{new_id()}@example.com", params, settings
        )
        for _ in range(mails)
    ]
    await storage.mail.enqueue(batch)
    return sender, recorder, {m.to for m in batch}


async def drain(sender: Sender) -> None:
    while await sender.run_once():
        pass


async def test_an_idle_process_sends_back_to_back(storage: ManagedStorage) -> None:
    sender, recorder, addresses = await sender_with(storage, arriving=False, mails=10)
    assert await sender.run_once() == 10
    assert addresses <= set(recorder.sent)
    assert recorder.pauses == []


async def test_a_busy_process_waits_a_turn_per_mail_and_claims_a_second_s_worth(
    storage: ManagedStorage,
) -> None:
    sender, recorder, addresses = await sender_with(storage, arriving=True, mails=10)
    sender.load.begun += 1  # requests arrived before the first claim
    assert await sender.run_once() == 4
    await drain(sender)
    assert addresses <= set(recorder.sent)
    assert len(recorder.sent) == len(set(recorder.sent))
    assert recorder.pauses == [0.25] * len(recorder.sent)
