"""An owner for the asyncio tasks of one call (or of the relay): nothing outlives its owner."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from app.logs import get_logger

log = get_logger(__name__)


class TaskOwner:
    """Creates tasks, logs their crashes, and cancels whatever is left when `cancel_all` is called."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start `coro` as a task owned here."""
        if self.closed:
            coro.close()
            raise RuntimeError(f"{self._label}: task owner is closed")
        task = asyncio.create_task(coro, name=f"{self._label}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("task_crashed", owner=self._label, task=task.get_name(), error=repr(exc))

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every task but the caller's own, and wait for them to finish."""
        self.closed = True
        current = asyncio.current_task()
        victims = [task for task in self._tasks if task is not current]
        for task in victims:
            task.cancel()
        if victims:
            await asyncio.gather(*victims, return_exceptions=True)
