"""The Celery app, built per process from settings: broker, no-loss delivery settings, beat schedule.

Broker: `REDIS_URL`, or with no Redis the embedded SQLite queue under `DATA_DIR` (workers/embedded_queue.py),
which keeps Redis's ack/visibility semantics so `voice-agent dev` needs no servers and loses nothing.

No loss, no harm from duplicates (see shared OPS.md part 1):
- late acks + reject-on-worker-lost: a task whose process dies (SIGKILL, OOM) is redelivered; every task is
  idempotent per (call, effect), so running twice does no harm. The price is that a task that kills its
  process every time would loop; ours are small (ids and one call's rows), so losing work is the bigger
  risk. Watch `celery_task_*` metrics for a task name that never succeeds.
- prefetch 1: a worker holds one message per process, so a dead worker strands at most that many.
- soft/hard time limits below the visibility timeout (15 min), which is above the longest task plus the
  longest retry backoff, so a slow task is never handed to a second worker while the first still runs it.
- retries with exponential backoff and jitter for transient errors; a task that exhausts them is written
  to `failed_tasks` (workers/tasks.py), since Redis has no dead-letter queue.
- no result backend: our tables are the record of what happened.
- the relay publishes with `role="publisher"`: short socket timeouts and no publish retries, because its
  outbox retries on its own schedule and must never sit in a blocking connect.
"""

from __future__ import annotations

from typing import Any, Literal

from celery import Celery

from app.settings import Settings
from workers.embedded_queue import register_transport
from workers.queue_metrics import install_publish_stamp

Role = Literal["worker", "publisher"]

QUEUE = "voice_agent"
# Above the longest task (hard limit 180 s) plus the longest retry countdown (300 s) with a wide margin,
# and short enough that a task stranded on a dead machine is redelivered within a quarter of an hour.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 900.0
UNACKED_RESTORE_INTERVAL_SECONDS = 30
RETRY_BACKOFF_MAX_SECONDS = 300
HARD_TIME_LIMIT_SECONDS = 180
SOFT_TIME_LIMIT_SECONDS = 150


def embedded_queue_path(settings: Settings) -> str:
    """Where the embedded queue lives when no Redis is configured."""
    return str((settings.data_dir / "queue.sqlite3").resolve())


def broker_settings(settings: Settings, role: Role, visibility_timeout: float) -> dict[str, Any]:
    """Broker URL and transport options for Redis or the embedded queue."""
    if settings.redis_url:
        publisher = role == "publisher"
        options: dict[str, Any] = {
            "visibility_timeout": visibility_timeout,
            "socket_connect_timeout": 1.0 if publisher else 5.0,
            "socket_timeout": 2.0 if publisher else 30.0,
            "retry_on_timeout": not publisher,
            "socket_keepalive": True,
            "health_check_interval": 25,
            # kombu scans for stranded messages only every interval x throttle (100 s x ... by default).
            "unacked_restore_interval": UNACKED_RESTORE_INTERVAL_SECONDS,
            "unacked_restore_throttle": 1,
        }
        return {
            "broker_url": settings.redis_url,
            "broker_transport_options": options,
            "broker_connection_timeout": 1.0 if publisher else 5.0,
        }
    return {
        "broker_url": register_transport(),
        "broker_transport_options": {
            "queue_path": embedded_queue_path(settings),
            "visibility_timeout": visibility_timeout,
            "polling_interval": 0.1,
        },
        # Remote control and events need fanout, which the embedded queue does not offer.
        "worker_enable_remote_control": False,
    }


def make_celery(
    settings: Settings,
    *,
    role: Role = "worker",
    visibility_timeout_seconds: float = DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
) -> Celery:
    """A Celery app for these settings; workers and beat get the tasks and the sweep schedule.

    `visibility_timeout_seconds` must exceed the longest task plus the longest retry backoff (tests
    shorten it to watch a killed worker's message come back quickly)."""
    install_publish_stamp()  # every message carries when it was queued, for the oldest-task-age metric
    app = Celery("voice_agent", set_as_current=False)
    app.conf.update(
        **broker_settings(settings, role, visibility_timeout_seconds),
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=HARD_TIME_LIMIT_SECONDS,
        task_soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=20.0,
        worker_enable_soft_shutdown_on_idle=True,
        worker_max_tasks_per_child=500,
        worker_hijack_root_logger=False,
        worker_send_task_events=bool(settings.redis_url),
        enable_utc=True,
        timezone="UTC",
    )
    if role == "worker":
        from workers.beat import configure_beat
        from workers.context import WorkerContext
        from workers.tasks import register_tasks

        register_tasks(app, WorkerContext(settings))
        configure_beat(app, settings)
    return app
