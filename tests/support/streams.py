"""A live stream (Server-Sent Events) read raw from the real server, from a chosen loopback
address (any 127.x.y.z reaches a server on 127.0.0.1), frame by frame as sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx


class Stream:
    def __init__(
        self,
        base_url: str,
        path: str,
        source: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.headers = headers or {}
        transport = httpx.AsyncHTTPTransport(local_address=source)
        self.client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30)
        self.response: httpx.Response | None = None
        self.frames: list[bytes] = []
        self.ended = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> httpx.Response:
        request = self.client.build_request("GET", self.path, headers=self.headers)
        self.response = await self.client.send(request, stream=True)
        if self.response.status_code == 200:
            self.reader = asyncio.create_task(self._read(self.response))
        else:
            await self.response.aread()
        return self.response

    async def _read(self, response: httpx.Response) -> None:
        buffer = b""
        try:
            async for chunk in response.aiter_raw():
                buffer += chunk
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    self.frames.append(frame)
        finally:
            self.ended.set()

    def events(self) -> list[bytes]:
        return [f for f in self.frames if f.startswith(b"event:")]

    async def wait_for(self, found: Callable[[Stream], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not found(self):
                if self.ended.is_set():
                    raise AssertionError(f"stream ended early: {self.frames}")
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self.reader
        if self.response is not None:
            await self.response.aclose()
        await self.client.aclose()
