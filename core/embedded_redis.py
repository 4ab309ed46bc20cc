"""One Redis-protocol server shared by every worker of an embedded `ticketboss serve`.

Without REDIS_URL a single process keeps its cache in an in-process fakeredis. Workers are
separate processes, so each would get a fakeredis of its own: a worker would serve availability
it cached before another worker's booking changed it, and Idempotency-Key claims and rate
limits would count per worker. The `serve` supervisor therefore runs fakeredis's TCP server in
a thread of its own process, on 127.0.0.1 and a free port, and hands its URL to the workers as
REDIS_URL: one cache, as with a real Redis. (Production should still use a real Redis.)
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import fakeredis
from fakeredis._clients._tcp_server import TCPFakeRequestHandler
from redis.exceptions import ResponseError

LOOPBACK = "127.0.0.1"


class _ErrorRepliesAsValues:
    """A connection's replies with error replies returned, not raised. fakeredis's handler
    closes a connection on any exception, so an ordinary error reply (NOSCRIPT, which
    redis-py answers by loading the script) would cost the client its connection."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def read_response(self) -> Any:
        try:
            return self._connection.read_response()
        except ResponseError as error:
            return error  # written to the client as an error reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class _Handler(TCPFakeRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.current_client = _ErrorRepliesAsValues(self.current_client)  # type: ignore[assignment]


class EmbeddedRedis:
    """fakeredis's TCP server on a free loopback port, served from a background thread."""

    def __init__(self) -> None:
        self.server = fakeredis.TcpFakeServer((LOOPBACK, 0))
        self.server.RequestHandlerClass = _Handler
        port = self.server.server_address[1]
        self.url = f"redis://{LOOPBACK}:{port}/0"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="embedded-redis", daemon=True
        )

    def __enter__(self) -> EmbeddedRedis:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()  # also ends every connection's handler thread
        self.server.server_close()
        self.thread.join(timeout=5)
