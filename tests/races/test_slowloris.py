"""Slow request heads time out (issue 29): against the real `ticketboss serve` with
HEADER_TIMEOUT_SECONDS=1, sockets trickling a header line every 0.3 s, and one that sends
nothing, are answered 408 and closed within a few seconds, while ordinary requests go on."""

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
    with Server(url, workers=1, HEADER_TIMEOUT_SECONDS="1") as running:
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
