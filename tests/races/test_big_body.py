"""Early errors reach an ordinary client (issues 14 and 29): the real server (`ticketboss
serve`), Python's urllib posting 2 and 5 MiB in one write (it sends `Connection: close` and
reads nothing until the body is written), a 64 KiB header, and http.client on a keep-alive
connection, with Content-Length and chunked, which still answers afterwards."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.server import Server

pytestmark = pytest.mark.sqlite
FIVE_MIB = 5 * 1024 * 1024
PATHS = ["/api/v1/auth/login", "/api/v1/bookings", "/reservations"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    with Server(url, workers=1) as running:
        yield running


def _urlopen_error(request: urllib.request.Request) -> urllib.error.HTTPError:
    """The HTTP error urllib raises; a reset or broken pipe fails the test as itself."""
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    return raised.value


@pytest.mark.parametrize("size", [2 << 20, 5 << 20], ids=["2MiB", "5MiB"])
@pytest.mark.parametrize("path", PATHS)
def test_urllib_posting_a_big_body_in_one_write_reads_the_413(
    server: Server, path: str, size: int
) -> None:
    request = urllib.request.Request(
        server.base_url + path,
        data=b"x" * size,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    error = _urlopen_error(request)
    assert error.code == 413
    assert json.loads(error.read())["code"] == "PAYLOAD_TOO_LARGE"


def test_urllib_sending_oversized_headers_reads_the_431(server: Server) -> None:
    request = urllib.request.Request(
        server.base_url + "/api/v1/bookings",
        data=b"x" * (2 << 20),
        method="POST",
        headers={"Content-Type": "application/json", "X-Padding": "p" * 65536},
    )
    error = _urlopen_error(request)
    assert error.code == 431
    body = json.loads(error.read())
    assert body["code"] == "HEADERS_TOO_LARGE" and body["success"] is False


def _chunks() -> Iterator[bytes]:
    for _ in range(FIVE_MIB // 65536):
        yield b"x" * 65536


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", PATHS)
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
