"""Server-Sent Event streams of a state (live availability): one computation per change,
the same bytes to every subscriber, and limits on who may hold how many streams.

A topic with subscribers in this process has one feed: a task that listens for the topic's
notices (core/broadcast), computes the state, encodes it as an SSE frame once and hands that
frame to every subscriber. A subscriber is an ASGI response and a waiter on the feed's next
frame, so a thousand idle streams cost a thousand small coroutines and no work per change
beyond one write each. A subscriber that joins an open feed gets the frame already made.

Streams are a resource, limited with or without rate limits: per account and per IP
(429, Retry-After), and in total per worker process (503). A stream that has carried no update
for STREAM_IDLE_SECONDS is closed (an EventSource reconnects and gets the current state);
a comment every STREAM_HEARTBEAT_SECONDS keeps proxies from closing a quiet one, and lets the
server find a client that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from core.broadcast import Broadcast
from core.config import Settings
from core.errors import AppError
from core.logging import get_logger

log = get_logger(__name__)
FRAMES_COMPUTED = Counter(
    "ticketboss_stream_frames_computed_total",
    "States computed and encoded for live streams (once per change, whatever the subscribers)",
)
STREAMS_OPEN = Gauge("ticketboss_streams_open", "Live streams open", multiprocess_mode="livesum")
STREAMS_REFUSED = Counter("ticketboss_streams_refused_total", "Streams refused", ["reason"])
HEARTBEAT = b": ping\n\n"
RETRY_FRAME = b"retry: 3000\n\n"  # how long an EventSource waits before reconnecting, in ms
RECOMPUTE_AFTER_ERROR_SECONDS = 1.0
COALESCE_SECONDS = 0.25  # notices within this of a frame make one more frame, not many
Compute = Callable[[], Awaitable[bytes]]


class TooManyStreams(AppError):
    status_code, code, message = (
        429,
        "TOO_MANY_STREAMS",
        "Too many live streams are open from this account or address; close one first",
    )


class StreamsFull(AppError):
    status_code, code, message = (
        503,
        "STREAMS_FULL",
        "The server holds as many live streams as it can; retry shortly",
    )


def sse_frame(data: bytes, event: str, event_id: str) -> bytes:
    """One SSE event; `data` is JSON (one line, so one `data:` field)."""
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), event_id.encode(), data)


@dataclass(slots=True)
class Feed:
    """The latest frame of one topic and the future its subscribers wait on for the next."""

    frame: bytes | None = None
    subscribers: int = 0
    next_frame: asyncio.Future[bytes] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    task: asyncio.Task[None] | None = None

    def publish(self, frame: bytes) -> None:
        """Wake every subscriber with `frame`: a new state, or HEARTBEAT (the state stays)."""
        if frame is not HEARTBEAT:
            self.frame = frame
        waiting, self.next_frame = self.next_frame, asyncio.get_running_loop().create_future()
        waiting.set_result(frame)


class StreamHub:
    """This process's live streams: their feeds by topic and their counts by client."""

    def __init__(self, broadcast: Broadcast, settings: Settings) -> None:
        self.broadcast = broadcast
        self.settings = settings
        self.feeds: dict[str, Feed] = {}
        self.by_ip: Tally[str] = Tally()
        self.by_account: Tally[str] = Tally()
        self.open = 0

    def stream(self, topic: str, compute: Compute, ip: str, account: str | None) -> LiveStream:
        return LiveStream(self, topic, compute, ip, account)

    def own_stream(self, frames: AsyncGenerator[bytes], ip: str, account: str) -> OwnStream:
        return OwnStream(self, frames, ip, account)

    def admit(self, ip: str, account: str | None) -> None:
        """Count a new stream, or refuse it."""
        limits = self.settings
        retry = {"Retry-After": str(limits.stream_retry_after_seconds)}
        if self.by_ip[ip] >= limits.stream_max_per_ip or (
            account is not None and self.by_account[account] >= limits.stream_max_per_account
        ):
            STREAMS_REFUSED.labels("client").inc()
            raise TooManyStreams(headers=retry)
        if self.open >= limits.stream_max_per_worker:
            STREAMS_REFUSED.labels("worker").inc()
            raise StreamsFull(headers=retry)
        self.open += 1
        self.by_ip[ip] += 1
        if account is not None:
            self.by_account[account] += 1
        STREAMS_OPEN.inc()

    def release(self, ip: str, account: str | None) -> None:
        self.open -= 1
        _decrement(self.by_ip, ip)
        if account is not None:
            _decrement(self.by_account, account)
        STREAMS_OPEN.dec()

    def join(self, topic: str, compute: Compute) -> Feed:
        feed = self.feeds.get(topic)
        if feed is None:
            feed = self.feeds[topic] = Feed()
            feed.task = asyncio.create_task(self._produce(topic, feed, compute))
        feed.subscribers += 1
        return feed

    def leave(self, topic: str, feed: Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0 and self.feeds.get(topic) is feed:
            del self.feeds[topic]
            if feed.task is not None:
                feed.task.cancel()

    async def _produce(self, topic: str, feed: Feed, compute: Compute) -> None:
        """Compute the state at the start and after every burst of notices, once for all;
        a heartbeat when nothing changed for STREAM_HEARTBEAT_SECONDS."""
        heartbeat = self.settings.stream_heartbeat_seconds
        with self.broadcast.listen(topic) as changed:
            while True:
                changed.clear()
                try:
                    frame = await compute()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the storage is down: keep the streams, try again
                    log.warning("stream_state_failed", topic=topic, error=type(exc).__name__)
                    await asyncio.sleep(RECOMPUTE_AFTER_ERROR_SECONDS)
                    continue
                FRAMES_COMPUTED.inc()
                feed.publish(frame)
                await asyncio.sleep(COALESCE_SECONDS)  # notices meanwhile: one frame
                while not changed.is_set():  # quiet: one heartbeat for all the streams
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), heartbeat)
                    if not changed.is_set():
                        feed.publish(HEARTBEAT)


def _decrement(tally: Tally[str], key: str) -> None:
    tally[key] -= 1
    if tally[key] <= 0:
        del tally[key]


class LiveStream(Response):
    """The response of one stream. Admission happens when it is sent, so a slot is taken only
    by a stream that runs, and released however it ends."""

    media_type = "text/event-stream"

    def __init__(
        self, hub: StreamHub, topic: str, compute: Compute, ip: str, account: str | None
    ) -> None:
        super().__init__()
        self.hub = hub
        self.topic = topic
        self.compute = compute
        self.ip = ip
        self.account = account

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        hub.admit(self.ip, self.account)  # raises before anything is sent: the error envelope
        feed = hub.join(self.topic, self.compute)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await _start(send)
            await self._run(feed, gone, send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            hub.leave(self.topic, feed)
            hub.release(self.ip, self.account)

    async def _run(self, feed: Feed, gone: asyncio.Future[None], send: Send) -> None:
        """Wait on the feed's shared future (no timer or future of its own: a wake-up costs
        a write and little else), so a client that left is noticed at the next frame or
        heartbeat, and an idle stream is closed at the first heartbeat past its time."""
        idle = self.hub.settings.stream_idle_seconds
        sent: bytes | None = None
        idle_until = time.monotonic() + idle
        while True:
            frame = feed.frame
            if frame is not None and frame is not sent:
                await _write(send, frame)
                sent = frame
                idle_until = time.monotonic() + idle
            if gone.done() or time.monotonic() >= idle_until:
                return
            # shielded: cancelling this task must not cancel every subscriber's future
            if await asyncio.shield(feed.next_frame) is HEARTBEAT:
                await _write(send, HEARTBEAT)


class OwnStream(Response):
    """A stream of one client's own state (its place in a waiting room), which no feed can
    share: `frames` computes it for this client alone and yields a frame when it changed,
    HEARTBEAT when it did not. It counts against the same limits as a LiveStream and is
    closed the same way: when the client is gone, when `frames` ends, or when
    STREAM_IDLE_SECONDS pass without a change."""

    media_type = "text/event-stream"

    def __init__(self, hub: StreamHub, frames: AsyncGenerator[bytes], ip: str, account: str):
        super().__init__()
        self.hub, self.frames, self.ip, self.account = hub, frames, ip, account

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        hub.admit(self.ip, self.account)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await _start(send)
            idle = hub.settings.stream_idle_seconds
            idle_until = time.monotonic() + idle
            async for frame in self.frames:
                await _write(send, frame)
                if frame is not HEARTBEAT:
                    idle_until = time.monotonic() + idle
                if gone.done() or time.monotonic() >= idle_until:
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            with contextlib.suppress(Exception):
                await self.frames.aclose()
            hub.release(self.ip, self.account)


async def _start(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
            ],
        }
    )
    await _write(send, RETRY_FRAME)


async def _write(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
