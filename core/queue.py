"""The waiting room's state in Redis: who waits for an event, in which place, who is admitted.

Every key of one event shares the hash tag `{queue:<eventId>}`, so each script below touches
one Redis Cluster slot. Each step is one Lua script, atomic on the server: a join, a read, the
draw at opening and an admission tick. A process killed between two steps loses nothing; one
killed during a step never ran it. No step reads the database: the event's settings are
mirrored into the `cfg` hash (written by the event's changes and by the admitter).

Keys of event E (all `{queue:E}:<name>`):
  cfg     hash: en (1: open for joining), opens (ms), rate (per minute), max (-1: no limit),
          session (s), ver (the event version these came from: older never overwrite newer)
  pre     zset account → join ms: the pre-queue, before the draw
  wait    zset account → position: waiting, in place order
  adm     zset account → admittedUntil ms: admitted (active while the score is in the future)
  pos     hash account → position (kept after admission)
  joined  hash account → join ms
  atime   zset account → admission ms, the last minute's (the measured rate)
  waits   zset account → how long they waited (ms), for the median
  seq     the last position given;  drawn  set once the pre-queue's order is drawn
  bucket  hash credit, last (ms), first (ms of the first admission)
  lease   the admitter's id (one process admits per event at a time)
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from redis.commands.core import AsyncScript

from core.cache import Cache

QueueState = Literal["prequeue", "waiting", "admitted", "expired"]
EVENTS_KEY = "queue:events"
"""The events that have a waiting room, for the admitters to visit."""

NAMES: tuple[str, ...] = tuple(
    "cfg pre wait adm pos joined atime waits seq drawn bucket lease".split()
)
"""The keys' names, in the order the scripts know them (KEYS[1] is `cfg`…)."""
DREW = -2


def keys(event_id: str) -> list[str]:
    return [f"{{queue:{event_id}}}:{name}" for name in NAMES]


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """An event's `queue` setting (the record keeps its API shape: `of` and `shape`)."""

    enabled: bool
    opens_at: datetime
    admit_per_minute: int
    max_active: int | None
    session_seconds: int

    @classmethod
    def of(cls, shape: dict[str, Any]) -> QueueSettings:
        return cls(
            enabled=bool(shape["enabled"]),
            opens_at=datetime.fromisoformat(shape["opensAt"]).astimezone(UTC),
            admit_per_minute=int(shape["admitPerMinute"]),
            max_active=None if shape.get("maxActive") is None else int(shape["maxActive"]),
            session_seconds=int(shape["sessionSeconds"]),
        )

    def shape(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "opensAt": self.opens_at.astimezone(UTC).isoformat(),
            "admitPerMinute": self.admit_per_minute,
            "maxActive": self.max_active,
            "sessionSeconds": self.session_seconds,
        }


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Place:
    """One account's place, as `…/queue/me` shows it (the token is signed by the caller)."""

    state: QueueState
    position: int | None
    ahead: int | None
    eta_seconds: int | None
    admitted_until_ms: int | None


@dataclass(frozen=True, slots=True)
class Stats:
    prequeue: int
    waiting: int
    admitted: int
    active: int
    admitted_per_minute: float
    median_wait_seconds: float | None


# The config the scripts read, and the place of one account: shared by join and read.
_COMMON = """
local function cfg_of(k)
  local v = redis.call('HMGET', k[1], 'en', 'opens', 'rate', 'max', 'session', 'ver')
  if not v[1] then return nil end
  return {en = tonumber(v[1]), opens = tonumber(v[2]), rate = tonumber(v[3]),
          max = tonumber(v[4]), session = tonumber(v[5]), ver = tonumber(v[6])}
end
local function needs_draw(k, c, now)
  return now >= c.opens and redis.call('EXISTS', k[10]) == 0 and redis.call('ZCARD', k[2]) > 0
end
local function measured(k, c, now)
  -- admissions per second over the last minute (or since the first), else the setting
  local count = redis.call('ZCOUNT', k[7], now - 60000, '+inf')
  local first = tonumber(redis.call('HGET', k[11], 'first'))
  if count > 0 and first then
    local span = math.min(60000, math.max(1000, now - first))
    return count * 1000 / span
  end
  return c.rate / 60
end
local function place(k, c, who, now)
  local until_ms = redis.call('ZSCORE', k[4], who)
  if until_ms then
    local state = 'expired'
    if tonumber(until_ms) > now then state = 'admitted' end
    return {state, tonumber(redis.call('HGET', k[5], who)), 0, 0, tonumber(until_ms)}
  end
  local pos = redis.call('ZSCORE', k[3], who)
  if pos then
    local ahead = redis.call('ZCOUNT', k[3], '-inf', '(' .. pos)
    local rate = measured(k, c, now)
    local eta = -1
    if c.rate > 0 and rate > 0 then eta = math.ceil((ahead + 1) / rate) end
    return {'waiting', tonumber(pos), ahead, eta, -1}
  end
  if redis.call('ZSCORE', k[2], who) then return {'prequeue', -1, -1, -1, -1} end
  return nil
end
"""

_JOIN = (
    _COMMON
    + """
local c = cfg_of(KEYS)
if not c then return 'nocfg' end
local who, now = ARGV[1], tonumber(ARGV[2])
local found = place(KEYS, c, who, now)
if found then table.insert(found, 0) return found end
if c.en ~= 1 then return 'closed' end
if now < c.opens then
  redis.call('ZADD', KEYS[2], now, who)
elseif needs_draw(KEYS, c, now) then
  return 'draw'
else
  local pos = redis.call('INCR', KEYS[9])
  redis.call('ZADD', KEYS[3], pos, who)
  redis.call('HSET', KEYS[5], who, pos)
end
redis.call('HSET', KEYS[6], who, now)
local joined = place(KEYS, c, who, now)
table.insert(joined, 1)
return joined
"""
)

_READ = (
    _COMMON
    + """
local c = cfg_of(KEYS)
if not c then return 'nocfg' end
local now = tonumber(ARGV[2])
if needs_draw(KEYS, c, now) then return 'draw' end
local found = place(KEYS, c, ARGV[1], now)
if not found then return 'none' end
return found
"""
)

_DRAW = """
-- ARGV: now, n, then the pre-queue's n accounts in the order drawn
if redis.call('EXISTS', KEYS[10]) == 1 then return 0 end
local n = tonumber(ARGV[2])
if redis.call('ZCARD', KEYS[2]) ~= n then return -1 end
for i = 3, n + 2 do
  local who = ARGV[i]
  if not redis.call('ZSCORE', KEYS[2], who) then return -1 end
  local pos = redis.call('INCR', KEYS[9])
  redis.call('ZADD', KEYS[3], pos, who)
  redis.call('HSET', KEYS[5], who, pos)
end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[10], ARGV[1])
return n
"""

_CONFIGURE = """
-- ARGV: ver, en, opens, rate, max, session. A config from an older event version is ignored.
local ver = tonumber(redis.call('HGET', KEYS[1], 'ver'))
if ver and ver > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ver', ARGV[1], 'en', ARGV[2], 'opens', ARGV[3], 'rate', ARGV[4],
           'max', ARGV[5], 'session', ARGV[6])
return 1
"""

_TICK = (
    _COMMON
    + """
-- ARGV: owner, now, lease ms. Returns admitted count; -1: another process holds the lease;
-- -2: the pre-queue must be drawn first; -3: no config.
local owner, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local holder = redis.call('GET', KEYS[12])
if holder and holder ~= owner then return -1 end
redis.call('SET', KEYS[12], owner, 'PX', lease)
local c = cfg_of(KEYS)
if not c then return -3 end
if needs_draw(KEYS, c, now) then
  -- the draw takes a moment: admission starts after it with no credit saved up meanwhile
  redis.call('HSET', KEYS[11], 'credit', 0, 'last', now)
  return -2
end
local b = redis.call('HMGET', KEYS[11], 'credit', 'last')
local credit, last = tonumber(b[1]) or 1, tonumber(b[2]) or now
if c.rate <= 0 then
  redis.call('HSET', KEYS[11], 'credit', 0, 'last', now)
  return 0
end
credit = math.min(credit + math.max(0, now - last) * c.rate / 60000, math.max(1, c.rate / 60))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - 60000)
local room = c.rate - redis.call('ZCOUNT', KEYS[7], now - 60000, '+inf')
if c.max >= 0 then
  room = math.min(room, c.max - redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf'))
end
local waiting = redis.call('ZCARD', KEYS[3])
local n = math.max(0, math.floor(math.min(credit, room, waiting)))
-- Credit unused for want of waiters or room is not saved up: no burst when they come.
if credit > math.min(room, waiting) then credit = math.min(credit, n + 1) end
if n <= 0 then
  redis.call('HSET', KEYS[11], 'credit', credit, 'last', now)
  return 0
end
local popped = redis.call('ZPOPMIN', KEYS[3], n)
local until_ms = now + c.session * 1000
local admitted = 0
for i = 1, #popped, 2 do
  local who = popped[i]
  redis.call('ZADD', KEYS[4], until_ms, who)
  redis.call('ZADD', KEYS[7], now, who)
  local since = math.max(tonumber(redis.call('HGET', KEYS[6], who)) or now, c.opens)
  redis.call('ZADD', KEYS[8], math.max(0, now - since), who)
  admitted = admitted + 1
end
redis.call('HSET', KEYS[11], 'credit', credit - admitted, 'last', now)
if admitted > 0 then redis.call('HSETNX', KEYS[11], 'first', now) end
return admitted
"""
)

_STATS = (
    _COMMON
    + """
local c = cfg_of(KEYS)
local now = tonumber(ARGV[1])
local admitted = redis.call('ZCARD', KEYS[4])
local median = -1
local waited = redis.call('ZCARD', KEYS[8])
if waited > 0 then
  local lo = redis.call('ZRANGE', KEYS[8], math.floor((waited - 1) / 2), math.floor((waited - 1) / 2), 'WITHSCORES')
  local hi = redis.call('ZRANGE', KEYS[8], math.floor(waited / 2), math.floor(waited / 2), 'WITHSCORES')
  median = (tonumber(lo[2]) + tonumber(hi[2])) / 2
end
local first = tonumber(redis.call('HGET', KEYS[11], 'first'))
local recent = redis.call('ZCOUNT', KEYS[7], now - 60000, '+inf')
local span = 60000
if first then span = math.min(60000, math.max(1000, now - first)) end
return {redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]), admitted,
        redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf'), tostring(recent * 60000 / span),
        tostring(median)}
"""
)


class QueueUnavailable(Exception):
    """Redis could not be reached: the waiting room cannot answer (callers fail closed)."""


class NoConfig(Exception):
    """The event's settings are not in Redis (never mirrored, or Redis lost them)."""


class Closed(Exception):
    """The event's waiting room is not open for joining (disabled or not on sale)."""


class NotJoined(Exception):
    pass


def _int_or_none(value: Any) -> int | None:
    number = int(value)
    return None if number < 0 else number


def _place(reply: list[Any]) -> Place:
    state = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    return Place(
        state=state,  # type: ignore[arg-type]
        position=_int_or_none(reply[1]),
        ahead=_int_or_none(reply[2]),
        eta_seconds=_int_or_none(reply[3]),
        admitted_until_ms=_int_or_none(reply[4]),
    )


def _text(reply: Any) -> str | None:
    if isinstance(reply, bytes):
        return reply.decode()
    return reply if isinstance(reply, str) else None


class WaitingRoom:
    """The scripts, bound to one cache client. Every method raises QueueUnavailable when
    Redis fails."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        client = cache.client
        self._join: AsyncScript = client.register_script(_JOIN)
        self._read: AsyncScript = client.register_script(_READ)
        self._draw: AsyncScript = client.register_script(_DRAW)
        self._configure: AsyncScript = client.register_script(_CONFIGURE)
        self._tick: AsyncScript = client.register_script(_TICK)
        self._stats: AsyncScript = client.register_script(_STATS)

    async def _redis[R](self, work: Callable[[], Awaitable[R]]) -> R:
        """`work` against the cache; any failure of it means the room is down."""
        try:
            return await work()
        except Exception as exc:  # redis errors and cluster errors alike
            self.cache.degraded("queue", exc)
            raise QueueUnavailable() from exc

    async def _call(self, script: AsyncScript, event_id: str, *args: Any) -> Any:
        return await self._redis(
            lambda: script(keys=keys(event_id), args=list(args), client=self.cache.client)
        )

    async def configure(
        self, event_id: str, version: int, settings: QueueSettings | None, open_: bool
    ) -> None:
        """Mirror an event's settings (None: no queue) unless a newer version is there."""
        if settings is None:
            args: list[Any] = [version, 0, 0, 0, -1, 0]
        else:
            args = [
                version,
                1 if settings.enabled and open_ else 0,
                ms(settings.opens_at),
                settings.admit_per_minute,
                -1 if settings.max_active is None else settings.max_active,
                settings.session_seconds,
            ]
        await self._call(self._configure, event_id, *args)
        if settings is not None:
            await self._redis(lambda: self.cache.client.sadd(EVENTS_KEY, event_id))

    async def join(self, event_id: str, account_id: str, now: datetime) -> tuple[Place, bool]:
        """The account's place, and whether it was made now (False: it had one)."""
        for _ in range(5):
            reply = await self._call(self._join, event_id, account_id, ms(now))
            match _text(reply):
                case "nocfg":
                    raise NoConfig()
                case "closed":
                    raise Closed()
                case "draw":
                    await self.draw(event_id, now)
                    continue
            return _place(reply), bool(int(reply[5]))
        raise QueueUnavailable()

    async def read(self, event_id: str, account_id: str, now: datetime) -> Place:
        for _ in range(5):
            reply = await self._call(self._read, event_id, account_id, ms(now))
            match _text(reply):
                case "nocfg":
                    raise NoConfig()
                case "none":
                    raise NotJoined()
                case "draw":
                    await self.draw(event_id, now)
                    continue
            return _place(reply)
        raise QueueUnavailable()

    async def draw(self, event_id: str, now: datetime) -> None:
        """Give the pre-queue its places in a uniformly random order (the OS's randomness,
        not arrival order: arriving early or often buys nothing). Idempotent: whoever draws
        first wins, a draw that raced with a late pre-queue join is drawn again."""
        pre_key = keys(event_id)[NAMES.index("pre")]
        for _ in range(10):
            members = await self._redis(lambda: self.cache.client.zrange(pre_key, 0, -1))
            order = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
            secrets.SystemRandom().shuffle(order)
            if await self._call(self._draw, event_id, ms(now), len(order), *order) != -1:
                return

    async def tick(self, event_id: str, owner: str, now: datetime, lease_ms: int) -> int:
        """One admission step if this process holds (or takes) the event's lease: the next
        places, as many as the rate and `maxActive` allow, moved from waiting to admitted in
        one script. -1: another process admits this event; DREW: it drew the pre-queue."""
        admitted = int(await self._call(self._tick, event_id, owner, ms(now), lease_ms))
        if admitted == DREW:
            await self.draw(event_id, now)
        return admitted

    async def admitted_until(self, event_id: str, account_id: str) -> int | None:
        """When the account's admission ends (ms), or None if it was never admitted."""
        adm_key = keys(event_id)[NAMES.index("adm")]
        (score,) = await self._redis(
            lambda: self.cache.run(lambda pipe: pipe.zscore(adm_key, account_id))
        )
        return None if score is None else int(score)

    async def stats(self, event_id: str, now: datetime) -> Stats:
        reply = await self._call(self._stats, event_id, ms(now))
        median = float(reply[5])
        return Stats(
            prequeue=int(reply[0]),
            waiting=int(reply[1]),
            admitted=int(reply[2]),
            active=int(reply[3]),
            admitted_per_minute=round(float(reply[4]), 2),
            median_wait_seconds=None if median < 0 else round(median / 1000, 3),
        )

    async def events(self) -> list[str]:
        members = await self._redis(lambda: self.cache.client.smembers(EVENTS_KEY))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def forget_event(self, event_id: str) -> None:
        try:
            await self.cache.client.srem(EVENTS_KEY, event_id)
        except Exception as exc:
            self.cache.degraded("queue", exc)
