"""The back office's own database access, off the relay's event loop.

Page and API reads and writes (and the rendering and serialising of what they read, via `run`) run on a
small thread pool of their own, with their own engine and sessions: a slow query or a burst of staff clicks
waits for one of those threads and never for the event loop, and takes at most `max_threads` of them, so
live calls keep the loop to themselves. Database drivers release the GIL while they wait on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db.engine import make_engine, make_session_factory
from app.logs import get_logger
from app.settings import Settings

log = get_logger(__name__)

R = TypeVar("R")


class StoreUnavailableError(RuntimeError):
    """The call records could not be read or written (the pages answer 503 with a plain message)."""


class BackOfficeStore:
    """Runs functions of a session in the back office's threads; `close` at shutdown."""

    def __init__(self, settings: Settings, *, max_threads: int = 2) -> None:
        self._engine = make_engine(settings, connect_timeout_seconds=5.0)
        self._sessions = make_session_factory(self._engine)
        self._threads = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="backoffice-db")

    async def read(self, fn: Callable[..., R], /, *args: object, **kwargs: object) -> R:
        """`fn(session, *args, **kwargs)` in a session of its own, in a back office thread."""
        return await self._run(False, lambda session: fn(session, *args, **kwargs))

    async def write(self, fn: Callable[..., R], /, *args: object, **kwargs: object) -> R:
        """`fn(session, *args, **kwargs)` in a transaction committed when it returns."""
        return await self._run(True, lambda session: fn(session, *args, **kwargs))

    async def run(self, fn: Callable[..., R], /, *args: object) -> R:
        """`fn(*args)` in a back office thread: CPU work (rendering, serialising) kept off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def _run(self, commit: bool, call: Callable[[Session], R]) -> R:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._threads, self._in_session, commit, call
            )
        except SQLAlchemyError as exc:  # down, unreachable or not migrated: say so, without a traceback
            log.warning("backoffice_database_error", error=type(exc).__name__)
            raise StoreUnavailableError from None

    def _in_session(self, commit: bool, fn: Callable[[Session], R]) -> R:
        if commit:
            with self._sessions.begin() as session:
                return fn(session)
        with self._sessions() as session:
            return fn(session)

    def close(self) -> None:
        """Let queued reads finish, then release the threads and connections."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        self._engine.dispose()
