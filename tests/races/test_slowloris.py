"""Slow requests time out (issue 29): against the real `ticketboss serve` with
HEADER_TIMEOUT_SECONDS=1, sockets trickling a header line every 0.3 s, and one that sends
nothing, are answered 408 and closed within a few seconds, while ordinary requests go on.
With BODY_TIMEOUT_SECONDS=1 a body trickled after its head gets 408 and a close; the rest of
a body answered early (413 on its Content-Length) is drained at most LINGER_MAX_BYTES or
LINGER_SECONDS, then the connection is closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import Server

pytestmark = pytest.mark.sqlite


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path_factory.mktemp('slow') / 'slow.db'}"
    limits = {
        "HEADER_TIMEOUT_SECONDS": "1",
        "BODY_TIMEOUT_SECONDS": "1",
        "LINGER_SECONDS": "1",
        "LINGER_MAX_BYTES": str(1 << 20),
    }
    with Server(url, workers=1, **limits) as running:
        yield running


def _closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while it keeps the connection open."""
    sock.setblocking(False)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return received
    return received


def test_trickling_and_silent_connections_are_dropped(server: Server) -> None:
    trickling = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    silent = socket.create_connection(("127.0.0.1", server.port))
    try:
        for sock in trickling:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answers: dict[int, bytes] = {}
        while len(answers) < 6 and time.monotonic() - started < 10:
            for index, sock in enumerate([*trickling, silent]):
                if index in answers:
                    continue
                if sock is not silent:
                    try:
                        sock.sendall(b"X-Trickle: 1\r\n")
                    except OSError:
                        pass  # closed: read what came before
                answer = _closed_by_server(sock)
                if answer is not None:
                    answers[index] = answer
                    sock.setblocking(True)
            assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200
            time.sleep(0.3)
        assert len(answers) == 6, f"{len(answers)} of 6 dropped in 10 s"
        for index in range(5):
            assert answers[index].startswith(b"HTTP/1.1 408"), answers[index][:80]
    finally:
        for sock in [*trickling, silent]:
            sock.close()


def test_a_head_sent_in_time_is_answered(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        sock.sendall(b"Connection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def _post_head(length: int) -> bytes:
    return (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
    )


def _trickle_until_closed(sock: socket.socket, chunk: bytes, pause: float) -> bytes:
    """Send `chunk` every `pause` seconds until the server closes; what it sent (30 s at most)."""
    deadline = time.monotonic() + 30
    received = b""
    sock.setblocking(False)
    while time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
        except OSError:
            pass  # closed: read what came before
        try:
            while part := sock.recv(65536):
                received += part
            return received
        except BlockingIOError:
            pass  # still open
        except ConnectionResetError:
            return received
        time.sleep(pause)
    raise AssertionError("the server kept the connection for 30 s")


def test_a_trickled_body_gets_408_and_a_close(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_post_head(1000) + b'{"email": ')
        answer = _trickle_until_closed(sock, b" ", 0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"REQUEST_TIMEOUT" in answer
    assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200


def test_the_drain_after_an_early_413_stops_at_its_byte_bound(server: Server) -> None:
    declared = 256 << 20
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_post_head(declared))
        chunk = b"x" * (64 << 10)
        try:
            while sent < 32 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        sock.settimeout(5)
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert sent < 32 << 20, "the server read 32 MiB of a refused body"


def test_the_drain_after_an_early_413_stops_at_its_time_bound(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_post_head(256 << 20) + b"x" * 1024)
        answer = _trickle_until_closed(sock, b"x" * 1024, 0.2)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
