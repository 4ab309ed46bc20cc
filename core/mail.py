"""The mail transport, and nothing else: a built message goes out over SMTP (`SMTP_URL`) or,
by default, into `MAIL_DIR` as one `.eml` file per message (the embedded mailbox).

What to send, when, and how often to retry is the notifications module's business; here a
send either returns (the server or the directory took the message) or raises `MailFailed`.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib


class MailFailed(Exception):
    """The message was not taken; `reason` is safe to log (no address, no credential)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Transport(Protocol):
    kind: str

    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool
    """smtps://: TLS from the first byte. smtp://: STARTTLS whenever the server offers it."""
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://user:pass@host:587` or `smtps://user:pass@host:465` (user and password
    percent-encoded); ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if tls else 587),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class SmtpTransport:
    kind = "smtp"

    def __init__(self, url: str, timeout: float, ca_file: str | None = None) -> None:
        self.target = parse_smtp_url(url)
        self.timeout = timeout
        self.ca_file = ca_file

    async def send(self, message: EmailMessage) -> None:
        t = self.target
        try:
            await aiosmtplib.send(
                message,
                hostname=t.host,
                port=t.port,
                username=t.username,
                password=t.password,
                use_tls=t.tls,
                start_tls=False if t.tls else None,  # None: upgrade when the server offers it
                cert_bundle=self.ca_file,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx: the server refuses this message for good (bad recipient, policy); 4xx: later.
            raise MailFailed(f"SMTP {exc.code}", permanent=500 <= exc.code < 600) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailFailed(type(exc).__name__) from None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def eml_name(message_id: str) -> str:
    """The file of a message in the mailbox: named by its Message-ID, so a message sent twice
    is one file (the receiver's dedupe, as a mail client does it)."""
    return _UNSAFE.sub("_", message_id.strip("<>")) + ".eml"


class DirectoryTransport:
    """The embedded mailbox: each message written whole (a temporary file, then renamed)."""

    kind = "directory"

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    async def send(self, message: EmailMessage) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            data = message.as_bytes(policy=policy.SMTP)
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, self.directory / eml_name(str(message["Message-ID"])))
        except OSError as exc:
            raise MailFailed(type(exc).__name__) from None


@dataclass(frozen=True, slots=True)
class Stored:
    """A message in the embedded mailbox, as /dev/mail lists it."""

    name: str
    to: str
    subject: str
    received_at: datetime


def mailbox(directory: str, limit: int = 200) -> list[Stored]:
    """The newest messages of the embedded mailbox first."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    listed = []
    for path in files[:limit]:
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        listed.append(
            Stored(
                name=path.name,
                to=str(parsed["To"] or ""),
                subject=str(parsed["Subject"] or ""),
                received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
            )
        )
    return listed


def stored_message(directory: str, name: str) -> EmailMessage | None:
    """One message of the mailbox by its file name (only names the mailbox itself made)."""
    if _UNSAFE.sub("_", name) != name or not name.endswith(".eml"):
        return None
    path = Path(directory) / name
    if not path.is_file():
        return None
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def build_transport(
    smtp_url: str | None, mail_dir: str, timeout: float, ca_file: str | None = None
) -> Transport:
    if smtp_url:
        return SmtpTransport(smtp_url, timeout, ca_file)
    return DirectoryTransport(mail_dir)
