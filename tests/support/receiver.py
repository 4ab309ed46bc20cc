"""A real webhook receiver for tests: a small HTTP/1.1 server on 127.0.0.1 (asyncio streams)
that records every request and answers with the statuses it is told, in turn."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import orjson
from standardwebhooks.webhooks import Webhook as Verifier

REASONS = {200: "OK", 204: "No Content", 410: "Gone", 500: "Internal Server Error"}


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    """What the receiver answered."""

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value

    def verify(self, secret: str) -> dict[str, Any]:
        """The body, once the Standard Webhooks verifier accepted the signature (else raises)."""
        value: dict[str, Any] = Verifier(secret).verify(self.body, self.headers)
        return value


class Receiver:
    def __init__(
        self,
        *statuses: int,
        default: int = 200,
        hang: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Answer `statuses` in turn, then `default`; or with `hang`, never answer (until
        the receiver closes). With `tls`, serve HTTPS at https://localhost:<port>."""
        self.hang = hang
        self.tls = tls
        self.closing = asyncio.Event()
        self.statuses = list(statuses)
        self.default = default
        self.received: list[Received] = []
        self.server: asyncio.Server | None = None
        self.url = ""
        self.arrived = asyncio.Event()

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        self.url = (
            f"https://localhost:{port}/hooks/in"
            if self.tls
            else f"http://127.0.0.1:{port}/hooks/in"
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.closing.set()
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.statuses.pop(0) if self.statuses else self.default
            self.received.append(Received(path, headers, body, status))
            self.arrived.set()
            if self.hang:
                await self.closing.wait()
                return
            reason = REASONS.get(status, "Status")
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def wait_until(
        self, done: Callable[[list[Received]], bool], timeout: float = 30
    ) -> list[Received]:
        """Wait until `done(received)` holds (a deadline for a loaded machine, not a timing
        assertion)."""
        async with asyncio.timeout(timeout):
            while not done(self.received):
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.received if r.json["type"] == type_]
