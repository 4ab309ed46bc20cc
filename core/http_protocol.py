"""The HTTP/1.1 connection of a `ticketboss serve` worker: uvicorn's httptools protocol, with a
limit on the request head and a close that lets the client read an early answer.

An early answer (413 for a body past MAX_BODY_BYTES, 431 for a head past MAX_HEADER_BYTES,
503 when the worker sheds load) is sent while the client may still be writing its request.
Closing a socket with unread bytes in its receive buffer makes the kernel send a reset, and a
client that writes its whole request before reading (Python's urllib, most simple clients)
then sees `BrokenPipeError` or `ConnectionResetError` instead of the answer. So, as proxies
do, a connection closed while its request is still arriving half-closes (the answer, then a
FIN), reads and drops what the client still sends for at most LINGER_SECONDS and
LINGER_MAX_BYTES, and closes when the client does.

uvicorn has no limit on how long a request head may take (its keep-alive timer stops at the
first byte), so a client trickling a header line every few seconds holds its connection
forever (slowloris). A head must be complete within HEADER_TIMEOUT_SECONDS of the connection
opening or of its first byte; past that the connection gets 408 and is closed. Likewise a
body must have arrived within BODY_TIMEOUT_SECONDS of its head (a client that sends a head,
then trickles the body): 408 and close while the request is unanswered.

A request answered before its body arrived (413 on a declared Content-Length) keeps its
connection alive, and uvicorn reads and drops the rest of the body before the next request.
That drain is bounded too: past LINGER_MAX_BYTES dropped, or LINGER_SECONDS after the answer,
the connection is closed (lingering, as above).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.config import load_settings
from core.errors import envelope_body


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    linger_seconds: float
    linger_max_bytes: int


@cache
def connection_limits() -> ConnectionLimits:
    """Read once per worker process: a protocol object is made for every connection."""
    settings = load_settings()
    return ConnectionLimits(
        settings.max_header_bytes,
        settings.header_timeout_seconds,
        settings.body_timeout_seconds,
        settings.linger_seconds,
        settings.linger_max_bytes,
    )


def error_response(status: int, reason: bytes, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 error response in the envelope, for answers sent below the app."""
    payload = json.dumps(envelope_body(code, message, os.urandom(16).hex())).encode()
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(payload),
            b"connection: close\r\n\r\n",
            payload,
        ]
    )


# (status, reason, code, message); each answer gets a request id of its own when sent.
ErrorAnswer = tuple[int, bytes, str, str]
HEADERS_TOO_LARGE: ErrorAnswer = (
    431,
    b"Request Header Fields Too Large",
    "HEADERS_TOO_LARGE",
    "The request headers are too large",
)
HEAD_TIMEOUT: ErrorAnswer = (
    408,
    b"Request Timeout",
    "REQUEST_TIMEOUT",
    "The request headers took too long",
)
BODY_TIMEOUT: ErrorAnswer = (
    408,
    b"Request Timeout",
    "REQUEST_TIMEOUT",
    "The request body took too long",
)
NOT_HTTP: ErrorAnswer = (400, b"Bad Request", "BAD_REQUEST", "The request is not valid HTTP")


class HeadTooLarge(Exception):
    """Raised from the parser's callback to stop parsing a head past MAX_HEADER_BYTES."""


class LingeringTransport(asyncio.Transport):
    """The socket's transport as the protocol sees it: `close()` lingers while the client is
    still sending its request; everything else goes straight to the socket."""

    def __init__(self, raw: asyncio.Transport, protocol: TicketBossProtocol) -> None:
        super().__init__()
        self.raw = raw
        self.protocol = protocol
        self.lingering = False

    def close(self) -> None:
        if (
            self.lingering
            or self.raw.is_closing()
            or not self.protocol.still_receiving()
            or not self.raw.can_write_eof()
        ):
            self.raw.close()
            return
        self.lingering = True
        self.raw.write_eof()  # after what is buffered: the answer goes out, then a FIN
        self.raw.resume_reading()
        self.protocol.loop.call_later(connection_limits().linger_seconds, self.raw.close)

    def is_closing(self) -> bool:
        return self.lingering or self.raw.is_closing()

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        if not self.lingering:
            self.raw.write(data)

    def writelines(self, list_of_data: Any) -> None:
        if not self.lingering:
            self.raw.writelines(list_of_data)

    def write_eof(self) -> None:
        self.raw.write_eof()

    def can_write_eof(self) -> bool:
        return self.raw.can_write_eof()

    def abort(self) -> None:
        self.raw.abort()

    def pause_reading(self) -> None:
        if not self.lingering:
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.raw.resume_reading()

    def is_reading(self) -> bool:
        return self.raw.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.raw.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.raw.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.raw.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.raw.get_protocol()


class TicketBossProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and a lingering close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = connection_limits()
        self.socket: LingeringTransport | None = None
        self.reading_head = True
        self.head_bytes = 0
        self.refused = False
        self.discarded = 0
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.drained = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.socket = LingeringTransport(cast(asyncio.Transport, transport), self)
        super().connection_made(self.socket)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self.head_timer is None:
            delay = self.limits.header_timeout_seconds
            self.head_timer = self.loop.call_later(delay, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        """Not lingering: this client is slow on purpose, or gone."""
        self.head_timer = None
        if self.socket is not None and not self.socket.is_closing():
            self.socket.raw.write(error_response(*HEAD_TIMEOUT))
            self.socket.raw.close()

    def _arm_body_timer(self, delay: float) -> None:
        self._cancel_body_timer()
        self.body_timer = self.loop.call_later(delay, self._body_timed_out)

    def _cancel_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_timed_out(self) -> None:
        """The body is late: 408 if the request is unanswered, else (an answer sent early,
        its body still being drained) only the close."""
        self.body_timer = None
        if self.socket is None or self.socket.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_started:
            self.socket.lingering = True  # the app's answer, if it still comes, is dropped
            self.socket.raw.write(error_response(*BODY_TIMEOUT))
            self.socket.raw.close()
        else:
            self.transport.close()

    def still_receiving(self) -> bool:
        """Whether the client may still be sending the request this connection answers."""
        if self.refused or (self.reading_head and self.head_bytes > 0):
            return True
        return self.cycle is not None and self.cycle.more_body

    def data_received(self, data: bytes) -> None:
        if self.socket is not None and self.socket.lingering:
            self.discarded += len(data)
            if self.discarded > self.limits.linger_max_bytes:
                self.socket.raw.close()
            return
        super().data_received(data)
        # httptools has no limit of its own on a request head: count what arrives while one
        # is incomplete (a head that ends in this chunk has reset the count).
        if self.reading_head and not self.refused:
            self._arm_head_timer()
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_header_bytes:
                self.refuse(HEADERS_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_head = True
        self.head_bytes = 0

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._cancel_head_timer()
        size = len(self.url) + sum(len(n) + len(v) for n, v in self.headers)
        self.head_bytes = 0
        if size > self.limits.max_header_bytes:
            self.refuse(HEADERS_TOO_LARGE)
            raise HeadTooLarge  # stops the parser; uvicorn's handler finds it refused
        super().on_headers_complete()
        self.drained = 0
        self._arm_body_timer(self.limits.body_timeout_seconds)  # ends with the message

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete:  # answered early: dropped
            self.drained += len(body)
            if self.drained > self.limits.linger_max_bytes and not self.transport.is_closing():
                self.discarded = self.drained  # the linger's budget is spent as well
                self.transport.close()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # answered before its body arrived: the rest is drained for LINGER_SECONDS at most
            self._arm_body_timer(self.limits.linger_seconds)

    def send_400_response(self, msg: str) -> None:
        self.refuse(NOT_HTTP)

    def refuse(self, answer: ErrorAnswer) -> None:
        """Answer a request the parser cannot go on with, and close (lingering)."""
        if self.refused:
            return
        self.refused = True
        self.transport.write(error_response(*answer))
        self.transport.close()
