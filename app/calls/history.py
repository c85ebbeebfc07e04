"""Where a transferred call's conversation waits for the caller to come back, on any relay instance.

A hand-off that does not connect (busy, no-answer, declined) sends the caller back to the agent on a new
stream, and Twilio may open it on another relay instance than the one that transferred. So the condensed
conversation is written when the transfer starts (and again when the transferring stream ends), and read
when the caller's return is prepared or its stream binds.

- `LocalHistoryStore`: this process's memory, for one relay (the embedded defaults, no Redis).
- `RedisHistoryStore`: the shared Redis (`REDIS_URL`), with a TTL. Every operation has a short timeout and
  never raises: Redis down or slow costs the returning caller their context (the agent still knows why they
  are back), never the audio path or the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.logs import get_logger

HISTORY_TTL_SECONDS = 900  # a hand-off rings for under a minute; a quarter of an hour covers any retry
REDIS_TIMEOUT_SECONDS = 0.3
KEY_PREFIX = "voice_agent:history:"

log = get_logger(__name__)


class HistoryStore(Protocol):
    """Keeps a call's condensed conversation (lines like "Caller: ...") for its next segment."""

    async def save(self, call_sid: str, lines: list[str]) -> None: ...

    async def load(self, call_sid: str) -> list[str]: ...

    async def close(self) -> None: ...


class LocalHistoryStore:
    """In this process's memory, forgotten after `HISTORY_TTL_SECONDS`."""

    def __init__(self, ttl_seconds: float = HISTORY_TTL_SECONDS) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, list[str]]] = {}

    async def save(self, call_sid: str, lines: list[str]) -> None:
        now = time.monotonic()
        self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self._ttl}
        self._entries[call_sid] = (now, list(lines))

    async def load(self, call_sid: str) -> list[str]:
        entry = self._entries.get(call_sid)
        if entry is None or time.monotonic() - entry[0] >= self._ttl:
            return []
        return list(entry[1])

    async def close(self) -> None:
        self._entries.clear()


class RedisHistoryStore:
    """In the shared Redis, readable by every relay instance; a local copy answers when Redis cannot."""

    def __init__(self, url: str, *, timeout: float = REDIS_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._local = LocalHistoryStore()

    async def save(self, call_sid: str, lines: list[str]) -> None:
        await self._local.save(call_sid, lines)
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.set(KEY_PREFIX + call_sid, json.dumps(lines), ex=HISTORY_TTL_SECONDS)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("history_save_failed", call_sid=call_sid, error=type(exc).__name__)

    async def load(self, call_sid: str) -> list[str]:
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._redis.get(KEY_PREFIX + call_sid)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("history_load_failed", call_sid=call_sid, error=type(exc).__name__)
            return await self._local.load(call_sid)
        if raw is None:
            return await self._local.load(call_sid)
        try:
            value = json.loads(raw)
        except ValueError:
            return []
        return [str(line) for line in value] if isinstance(value, list) else []

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.close()


def history_store_for(redis_url: str | None) -> HistoryStore:
    """Redis when the relay has one (several instances share it), else this process's memory."""
    return RedisHistoryStore(redis_url) if redis_url else LocalHistoryStore()
