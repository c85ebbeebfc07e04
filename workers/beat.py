"""Celery beat for this app: the stuck-call sweep and retention schedules, and a lock so only one beat runs.

Two beats would publish every sweep twice (harmless, the sweep is idempotent) but the real reason for the
lock is that people do start a second one by accident (a deploy overlap, `voice-agent dev` next to a
production beat on the same Redis). The lock is:
- with Redis: a key set with NX and a 60 s expiry, renewed on every scheduler tick (at most every 10 s)
  by the process holding it (checked by token, atomically, in a Lua script). A beat that crashes frees
  it within a minute; a beat that finds the key taken by someone else stops.
- embedded mode: an exclusive `flock` on `DATA_DIR/beat.lock`, which the kernel frees when the holder dies.
The scheduler is the in-memory one: a beat restart simply starts sweeping again, no schedule file needed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from pathlib import Path
from typing import IO, Any, Protocol

import redis
from celery import Celery
from celery.beat import Scheduler

from app.logs import get_logger
from app.settings import Settings
from workers.task_names import PURGE_EXPIRED_CALLS, SWEEP_STUCK_CALLS

log = get_logger(__name__)

LOCK_KEY = "voice_agent:beat:lock"
# Days-long retention needs no haste, but a beat restarted by every deploy only fires an entry one full
# interval after it starts: short enough that frequent deploys still let it run.
RETENTION_SWEEP_SECONDS = 900.0
LOCK_TTL_SECONDS = 60
MAX_LOOP_SECONDS = 10.0

_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return 1
elseif not holder then
    return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) and 1 or 0
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class BeatLock(Protocol):
    """Exclusive right to run the beat."""

    lost: bool

    def acquire(self) -> bool:
        """Take the lock if free; False if another beat holds it."""
        ...

    def renew(self) -> bool:
        """Keep holding it; False if another beat has it now."""
        ...

    def release(self) -> None:
        """Let it go (only if still ours)."""
        ...

    def holder(self) -> str | None:
        """Who holds it (host:pid:token), for messages."""
        ...


def _identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisBeatLock:
    """The Redis-key lock described above."""

    def __init__(self, redis_url: str, *, key: str = LOCK_KEY, ttl_seconds: int = LOCK_TTL_SECONDS) -> None:
        self._client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
        self._key = key
        self._ttl = ttl_seconds
        self._token = _identity()
        self.lost = False

    def acquire(self) -> bool:
        return bool(self._client.set(self._key, self._token, nx=True, ex=self._ttl))

    def renew(self) -> bool:
        try:
            kept = bool(self._client.eval(_RENEW, 1, self._key, self._token, self._ttl))  # type: ignore[no-untyped-call]
        except redis.RedisError:
            # Redis is unreachable: nobody else can take the lock there either, and beat cannot publish.
            log.warning("beat_lock_unreachable")
            return True
        self.lost = self.lost or not kept
        return kept

    def release(self) -> None:
        try:
            self._client.eval(_RELEASE, 1, self._key, self._token)  # type: ignore[no-untyped-call]
        except redis.RedisError:
            log.warning("beat_lock_release_failed")
        finally:
            self._client.close()

    def holder(self) -> str | None:
        value = self._client.get(self._key)
        return value.decode() if isinstance(value, bytes) else None


class FileBeatLock:
    """The `flock` lock described above."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[str] | None = None
        self.lost = False

    def acquire(self) -> bool:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(_identity())
        handle.flush()
        self._file = handle
        return True

    def renew(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def holder(self) -> str | None:
        try:
            return self._path.read_text().strip() or None
        except FileNotFoundError:
            return None


def make_beat_lock(settings: Settings) -> BeatLock:
    """The lock matching the broker: Redis key with Redis, file lock in embedded mode."""
    if settings.redis_url:
        return RedisBeatLock(settings.redis_url)
    return FileBeatLock(settings.data_dir / "beat.lock")


class LockedScheduler(Scheduler):  # type: ignore[misc]
    """The in-memory scheduler, refusing to run without the beat lock and stopping if it is lost."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        lock: BeatLock | None = getattr(app, "voice_agent_beat_lock", None)
        if lock is None:
            lock = make_beat_lock(app.voice_agent_settings)
            if not lock.acquire():
                raise SystemExit(
                    f"another beat holds the beat lock ({lock.holder()}); not starting a second one"
                )
            app.voice_agent_beat_lock = lock
        self._lock = lock
        super().__init__(app, *args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Renew the lock, then run due entries; stop if the lock was lost."""
        if not self._lock.renew():
            log.error("beat_lock_lost", holder=self._lock.holder())
            raise SystemExit("the beat lock was taken by another beat; stopping")
        interval: float = super().tick(*args, **kwargs)
        return interval


def configure_beat(app: Celery, settings: Settings) -> None:
    """Put the sweep on the app's beat schedule and make `LockedScheduler` its scheduler."""
    interval = settings.sweep_interval_seconds
    app.voice_agent_settings = settings
    app.conf.update(
        beat_scheduler=f"{LockedScheduler.__module__}:{LockedScheduler.__qualname__}",
        beat_max_loop_interval=min(MAX_LOOP_SECONDS, interval),
        beat_schedule={
            "sweep-stuck-calls": {
                "task": SWEEP_STUCK_CALLS,
                "schedule": interval,
                # A sweep that waited longer than one interval is superseded by the next.
                "options": {"expires": max(interval, 5.0)},
            },
            "purge-expired-calls": {
                "task": PURGE_EXPIRED_CALLS,
                "schedule": RETENTION_SWEEP_SECONDS,
                "options": {"expires": RETENTION_SWEEP_SECONDS},
            },
        },
    )


def run_beat(app: Celery, lock: BeatLock) -> int:
    """Run the beat loop in this process while holding `lock`; returns the exit code."""
    from celery.beat import Service

    app.voice_agent_beat_lock = lock
    service = Service(app, scheduler_cls=LockedScheduler)
    try:
        service.start()
    finally:
        lock.release()
    return 1 if lock.lost else 0
