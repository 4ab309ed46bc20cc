"""Reading the embedded mailbox (MAIL_DIR) as a person would: wait for the message, take the
link or the code out of it."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage

from core.mail import mailbox, stored_message

RESET = "Reset your TicketBoss password"
CODE = "Your TicketBoss code: "


async def newest(directory: str, to: str, subject_start: str, after: int = 0) -> EmailMessage:
    """The newest message to `to` whose subject starts so, once there are more than `after`."""
    async with asyncio.timeout(20):
        while (
            len(
                found := [
                    m
                    for m in mailbox(directory)
                    if m.to == to and m.subject.startswith(subject_start)
                ]
            )
            <= after
        ):
            await asyncio.sleep(0.05)
    message = stored_message(directory, found[0].name)
    assert message is not None
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def reset_token(directory: str, to: str, after: int = 0) -> str:
    text = text_of(await newest(directory, to, RESET, after))
    match = re.search(r"/reset-password#token=([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


async def code(directory: str, to: str, after: int = 0) -> str:
    message = await newest(directory, to, CODE, after)
    found = re.search(r"^\s+([0-9]{6})\s*$", text_of(message), re.MULTILINE)
    assert found, text_of(message)
    assert str(message["Subject"]) == CODE + found.group(1)
    return found.group(1)


def count(directory: str, to: str, subject_start: str) -> int:
    return sum(1 for m in mailbox(directory) if m.to == to and m.subject.startswith(subject_start))
