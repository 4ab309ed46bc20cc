"""A real SMTP server in the test process (aiosmtpd, on its own thread): it records every
message it accepts, can require a login, can refuse (4xx/5xx) or be slow on purpose.

Every registration mails a verification code: those messages are kept apart (`codes`), so
that a test counts the mail it is about in `received`."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.services import free_port


@dataclass
class Received:
    envelope_to: list[str]
    message: EmailMessage
    tls: bool = False
    """The message came over TLS (STARTTLS or smtps)."""

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


CODE_SUBJECT = "Your TicketBoss code: "


def is_code(message: EmailMessage) -> bool:
    return str(message["Subject"]).startswith(CODE_SUBJECT)


@dataclass
class Handler:
    refuse: str | None = None
    """An SMTP reply to every DATA (`451 try later`, `550 no such user`), or None to accept."""
    delay: float = 0.0
    """Seconds to wait before answering DATA (a send in flight, to kill a sender mid-send)."""
    received: list[Received] = field(default_factory=list)
    codes: list[Received] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse:
            with self.lock:
                self.refused += 1
            return self.refuse
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        tls = server.transport.get_extra_info("ssl_object") is not None
        got = Received(list(envelope.rcpt_tos), parsed, tls=tls)
        with self.lock:
            (self.codes if is_code(parsed) else self.received).append(got)
        return "250 OK"


class SmtpServer:
    """`tls`: a server certificate; with `starttls` the server insists on STARTTLS (and a
    login only over TLS), else it speaks TLS from the first byte (smtps)."""

    def __init__(
        self,
        *,
        login: tuple[str, str] | None = None,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
        starttls: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.handler = Handler()
        self.login = login
        options: dict[str, Any] = {}
        if login is not None:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; smtps is TLS from the first byte
            options = {
                "auth_require_tls": tls is not None and starttls,
                "authenticator": self._authenticate,
            }
        if tls is not None and starttls:
            options |= {"tls_context": tls, "require_starttls": True}
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            server_kwargs=options,
            ssl_context=tls if tls is not None and not starttls else None,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok)

    def url(self, scheme: str = "smtp") -> str:
        user = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    async def wait_until(
        self, done: Callable[[list[Received]], bool], timeout: float = 30
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while not done(got := self.received):
            if time.monotonic() > deadline:
                raise AssertionError(f"SMTP server got {len(got)} message(s) only")
            await asyncio.sleep(0.05)
        return got

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()
