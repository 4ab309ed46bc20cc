"""A 413 reaches Python's standard-library client (issue 14): the real server, 5 MiB bodies sent
with Content-Length and chunked, and the keep-alive connection still answers afterwards."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from tests.support.server import Server

pytestmark = pytest.mark.sqlite
FIVE_MIB = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    with Server(url, workers=1) as running:
        yield running


def _chunks() -> Iterator[bytes]:
    for _ in range(FIVE_MIB // 65536):
        yield b"x" * 65536


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/bookings", "/reservations"])
def test_a_5_mib_body_gets_413_and_the_connection_stays_usable(
    server: Server, path: str, chunked: bool
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"content-type": "application/json"}
        if chunked:
            conn.request("POST", path, body=_chunks(), headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=b"x" * FIVE_MIB, headers=headers)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 413, body
        assert b"PAYLOAD_TOO_LARGE" in body
        if r.getheader("connection", "").lower() != "close":
            conn.request("GET", "/health")
            again = conn.getresponse()
            assert again.status == 200 and again.read()
    finally:
        conn.close()
