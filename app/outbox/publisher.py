"""Handing journaled records to the workers' broker.

`CeleryPublisher` sends each record as a `persist_event` task, by name (the relay never imports the
workers' task code), through a Celery app built with `role="publisher"`: one-second connect timeouts and no
built-in publish retries, because the outbox dispatcher retries on its own schedule. After a failure the
app is rebuilt, so a connection pool left broken by a Redis restart is never reused.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from celery import Celery

from app.settings import Settings
from workers.celery_app import make_celery
from workers.task_names import PERSIST_EVENT


class Publisher(Protocol):
    """Puts one envelope on the broker; returns only once the broker has it, raises otherwise."""

    def publish(self, task_id: str, envelope: dict[str, Any]) -> None:
        """Hand one envelope to the broker under `task_id`; raise if the broker did not take it."""
        ...

    def close(self) -> None:
        """Release the broker connection."""
        ...


class CeleryPublisher:
    """Publishes `persist_event` tasks to the broker in settings (Redis or the embedded queue)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: Celery | None = None

    def publish(self, task_id: str, envelope: dict[str, Any]) -> None:
        """Send a `persist_event` task; on failure the app is dropped and rebuilt next time."""
        if self._app is None:
            self._app = make_celery(self._settings, role="publisher")
        try:
            self._app.send_task(PERSIST_EVENT, kwargs={"envelope": envelope}, task_id=task_id, retry=False)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close the Celery app and its connection pool."""
        if self._app is not None:
            app, self._app = self._app, None
            # Closing a broken pool may itself fail; the app is dropped either way.
            with contextlib.suppress(Exception):
                app.close()
