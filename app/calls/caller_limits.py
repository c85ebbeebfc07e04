"""Per-caller limits: how many calls one number may hold at once, and start in any rolling hour.

Checked by the voice webhook before a model session opens, so a number dialling in a loop costs nothing
but the refusal. Relay instances agree through Redis when `REDIS_URL` is set: two sorted sets per caller,
updated by one Lua script so the check and the count are atomic:
- `live`: member CallSid, score = when the entry lapses (now + the longest call + margin). Removed when the
  call ends; a relay that dies without removing it only blocks that slot until the score lapses.
- `recent`: member CallSid, score = when the call was admitted; members older than an hour are dropped.
Keys carry an HMAC of the number (keyed by the Twilio auth token), never the number itself.

The webhook must never wait on Redis: every request has a short timeout, and when Redis is unreachable or
slow the limits are counted in this process instead (logged once), and Redis is tried again a few seconds
later. A call admitted by one store is released in that same store.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.calls.tasks import TaskOwner
from app.logs import get_logger
from app.settings import Settings

log = get_logger(__name__)

HOUR_SECONDS = 3600.0
LIVE_MARGIN_SECONDS = 120.0  # past MAX_CALL_SECONDS: the goodbye, a transfer's hand-off
REDIS_TIMEOUT_SECONDS = 0.25
REDIS_RETRY_SECONDS = 5.0
KEY_PREFIX = "voice_agent:caller"

Refusal = Literal["concurrent", "hourly"]
Clock = Callable[[], float]

# KEYS: live, recent. ARGV: now, call_sid, max concurrent, max per hour, live ttl, hour.
# Returns 1 (admitted), -1 (too many at once) or -2 (too many this hour).
_ADMIT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[6]))
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -2 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5])) + 60)
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[6])) + 60)
return 1
"""
_VERDICTS: dict[int, Refusal | None] = {1: None, -1: "concurrent", -2: "hourly"}


@dataclass(frozen=True, slots=True)
class Limits:
    """The numbers a store checks against."""

    concurrent: int
    hourly: int
    live_ttl_seconds: float


def caller_key(secret: str, number: str | None) -> str:
    """A stable, irreversible name for a caller (callers with no number share one)."""
    digest = hmac.new(secret.encode(), (number or "unknown").encode(), hashlib.sha256).hexdigest()
    return digest[:32]


class CountStore(Protocol):
    """Where admitted calls are counted."""

    async def admit(self, key: str, call_sid: str, limits: Limits) -> Refusal | None:
        """Count the call and return None, or return why it is refused (and count nothing)."""
        ...

    async def release(self, key: str, call_sid: str) -> None:
        """The call ended: it no longer counts as live."""
        ...


class LocalCounts:
    """The counts of this process only (no Redis, or Redis unreachable)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._live: dict[str, dict[str, float]] = {}
        self._recent: dict[str, dict[str, float]] = {}

    async def admit(self, key: str, call_sid: str, limits: Limits) -> Refusal | None:
        now = self._clock()
        live = {sid: lapse for sid, lapse in self._live.get(key, {}).items() if lapse > now}
        recent = {sid: at for sid, at in self._recent.get(key, {}).items() if at > now - HOUR_SECONDS}
        self._live[key], self._recent[key] = live, recent
        if call_sid in recent:
            return None
        if len(live) >= limits.concurrent:
            return "concurrent"
        if len(recent) >= limits.hourly:
            return "hourly"
        live[call_sid] = now + limits.live_ttl_seconds
        recent[call_sid] = now
        return None

    async def release(self, key: str, call_sid: str) -> None:
        live = self._live.get(key, {})
        live.pop(call_sid, None)
        if not live and not self._recent.get(key):
            self._live.pop(key, None)
            self._recent.pop(key, None)


class RedisCounts:
    """The counts every relay sharing `REDIS_URL` sees (the script above)."""

    def __init__(self, client: aioredis.Redis[Any], clock: Clock) -> None:
        self._client = client
        self._clock = clock
        self._script = client.register_script(_ADMIT)

    async def admit(self, key: str, call_sid: str, limits: Limits) -> Refusal | None:
        keys = [f"{KEY_PREFIX}:{key}:live", f"{KEY_PREFIX}:{key}:recent"]
        args: list[str | int | float] = [
            self._clock(),
            call_sid,
            limits.concurrent,
            limits.hourly,
            limits.live_ttl_seconds,
            HOUR_SECONDS,
        ]
        result = await asyncio.wait_for(self._script(keys=keys, args=args), REDIS_TIMEOUT_SECONDS)
        return _VERDICTS[int(result)]

    async def release(self, key: str, call_sid: str) -> None:
        await asyncio.wait_for(self._client.zrem(f"{KEY_PREFIX}:{key}:live", call_sid), REDIS_TIMEOUT_SECONDS)

    async def aclose(self) -> None:
        await self._client.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose (redis 5)


class CallerLimits:
    """Admits or refuses a ringing call by its caller's number; releases it when the call ends."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        redis_client: aioredis.Redis[Any] | None = None,
    ) -> None:
        self._secret = settings.auth_token()
        self._limits = Limits(
            settings.max_calls_per_caller,
            settings.max_calls_per_caller_per_hour,
            settings.max_call_seconds + LIVE_MARGIN_SECONDS,
        )
        if redis_client is None and settings.redis_url:
            redis_client = aioredis.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
        self._redis = RedisCounts(redis_client, clock) if redis_client is not None else None
        self._local = LocalCounts(clock)
        self._monotonic = monotonic
        self._redis_retry_at = 0.0
        self._redis_down = False
        self._admitted: dict[str, tuple[CountStore, str]] = {}
        self._watched: set[str] = set()
        self._tasks = TaskOwner("caller-limits")

    async def admit(self, call_sid: str, number: str | None) -> Refusal | None:
        """None if the call may go ahead (and now counts), else which limit the caller reached."""
        key = caller_key(self._secret, number)
        store: CountStore = self._local
        refusal: Refusal | None
        if self._redis is not None and self._monotonic() >= self._redis_retry_at:
            try:
                refusal = await self._redis.admit(key, call_sid, self._limits)
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_failed(exc)
            else:
                self._redis_recovered()
                if refusal is None:
                    self._admitted[call_sid] = (self._redis, key)
                return refusal
        refusal = await store.admit(key, call_sid, self._limits)
        if refusal is None:
            self._admitted[call_sid] = (store, key)
        return refusal

    @property
    def counted_calls(self) -> int:
        """Calls admitted here whose end has not been released yet."""
        return len(self._admitted)

    async def release(self, call_sid: str) -> None:
        """The call ended: free its concurrent slot in the store that admitted it."""
        store, key = self._admitted.pop(call_sid, (None, ""))
        if store is None:
            return
        try:
            await store.release(key, call_sid)
        except (RedisError, OSError, TimeoutError) as exc:
            # The entry lapses on its own (its score); until then it holds one of the caller's slots.
            log.warning("caller_limit_release_failed", call_sid=call_sid, error=type(exc).__name__)

    def release_when_ended(self, call_sid: str, ended: asyncio.Event) -> None:
        """Release the call once `ended` is set (the relay's call ended, however it ended)."""
        if call_sid in self._admitted and call_sid not in self._watched:
            self._watched.add(call_sid)
            self._tasks.spawn(self._release_after(call_sid, ended), "release")

    async def _release_after(self, call_sid: str, ended: asyncio.Event) -> None:
        try:
            await ended.wait()
            await self.release(call_sid)
        finally:
            self._watched.discard(call_sid)

    def _redis_failed(self, exc: BaseException) -> None:
        self._redis_retry_at = self._monotonic() + REDIS_RETRY_SECONDS
        if not self._redis_down:
            self._redis_down = True
            log.warning(
                "caller_limits_counting_locally", reason="redis_unavailable", error=type(exc).__name__
            )

    def _redis_recovered(self) -> None:
        if self._redis_down:
            self._redis_down = False
            log.info("caller_limits_counting_in_redis_again")

    async def aclose(self) -> None:
        """Release what is still counted here (the relay has ended its calls) and close Redis."""
        await self._tasks.cancel_all()
        await asyncio.gather(*(self.release(call_sid) for call_sid in list(self._admitted)))
        if self._redis is not None:
            await self._redis.aclose()
