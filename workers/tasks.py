"""Thin Celery tasks over `workers/effects`, and the record of tasks that finally failed.

Tasks are registered on the app passed in (no module-level app), under stable names the relay publishes
to by name. Each task id is deterministic from (task, call, effect) so logs and monitors line up across
retries and redeliveries. Flow:

    persist_event (every event) --phone call over--> post_call: outcome -> summary -> consent audit
                                                       |-> sync_crm, deliver_summary(webhook|email)
                                --staff_alert note--> alert_staff(webhook|email), at once, mid-call

"Phone call over" is not one segment's end: a call transferred to a person who did not answer comes back
on a new segment, and is summarised once, when its last segment ended with no transfer pending, or when
Twilio's final call status says so (see app/db/segment_records.py).
    sweep_stuck_calls (beat) --> post_call + complete_remote_call for each abandoned call

Transient errors (a remote service or the database unavailable, soft time limit) retry with exponential
backoff and jitter; permanent ones and exhausted retries land in `failed_tasks`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError

from app.db.ledger import record_failed_task
from app.logs import get_logger
from workers.context import WorkerContext
from workers.effects.crm import EFFECT as CRM_EFFECT
from workers.effects.crm import sync_crm
from workers.effects.delivery import EFFECTS as DELIVERY_EFFECTS
from workers.effects.delivery import configured_channels, deliver_summary
from workers.effects.errors import NotReadyError, PermanentEffectError, TransientEffectError
from workers.effects.persist import persist_event
from workers.effects.post_call import calls_needing_post_call, run_post_call, transcript_complete
from workers.effects.retention import PURGE_BATCH, purge_expired_calls
from workers.effects.staff_alert import EFFECTS as ALERT_EFFECTS
from workers.effects.staff_alert import alert_staff
from workers.effects.sweeper import HANGUP_EFFECT, complete_remote_call, sweep_stuck_calls
from workers.task_names import (
    ALERT_STAFF,
    COMPLETE_REMOTE_CALL,
    DELIVER_SUMMARY,
    PERSIST_EVENT,
    POST_CALL,
    PURGE_EXPIRED_CALLS,
    SWEEP_STUCK_CALLS,
    SYNC_CRM,
)

log = get_logger(__name__)

RETRYABLE = (TransientEffectError, NotReadyError, OperationalError, InterfaceError, SoftTimeLimitExceeded)
MAX_RETRIES = 8
POST_CALL_MAX_RETRIES = 5
TRANSCRIPT_WAIT_SECONDS = 1.0
TRANSCRIPT_MAX_WAITS = 20


def _effect_of(task_name: str, kwargs: dict[str, Any]) -> str | None:
    if task_name == SYNC_CRM:
        return CRM_EFFECT
    if task_name == DELIVER_SUMMARY:
        return DELIVERY_EFFECTS.get(str(kwargs.get("channel")))
    if task_name == COMPLETE_REMOTE_CALL:
        return HANGUP_EFFECT
    if task_name == ALERT_STAFF:
        return ALERT_EFFECTS.get(str(kwargs.get("channel")))
    return None


def _call_sid_of(kwargs: dict[str, Any]) -> str | None:
    if "call_sid" in kwargs:
        return str(kwargs["call_sid"])
    record = (kwargs.get("envelope") or {}).get("record") or {}
    return str(record["call_sid"]) if record.get("call_sid") else None


def publish_post_call(app: Celery, call_sid: str) -> None:
    """Start the post-call pipeline for a finished call."""
    app.send_task(POST_CALL, kwargs={"call_sid": call_sid}, task_id=f"post_call:{call_sid}")


def register_tasks(app: Celery, ctx: WorkerContext) -> None:
    """Define the tasks on `app`, bound to `ctx` for their resources."""

    class RecordedTask(Task):  # type: ignore[misc]
        """Writes a `failed_tasks` row when a task gives up, so failures are visible and can be requeued."""

        def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            kwargs = dict(kwargs or {})
            call_sid = _call_sid_of(kwargs)
            log.error(
                "task_failed", task=self.name, task_id=task_id, call_sid=call_sid, error=type(exc).__name__
            )
            message = str(exc) if isinstance(exc, PermanentEffectError | TransientEffectError) else ""
            try:
                with ctx.sessions().begin() as session:
                    record_failed_task(
                        session,
                        task_name=self.name,
                        task_id=task_id,
                        error_type=type(exc).__name__,
                        error_message=message,
                        attempts=int(getattr(self.request, "retries", 0) or 0) + 1,
                        payload=kwargs,
                        call_sid=call_sid,
                        effect=_effect_of(self.name, kwargs),
                    )
            except Exception as record_error:  # the failure must stay visible in the log at least
                log.error("failed_task_not_recorded", task_id=task_id, error=type(record_error).__name__)

    options: dict[str, Any] = {
        "bind": True,
        "base": RecordedTask,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": RETRYABLE,
        "dont_autoretry_for": (PermanentEffectError,),
        "retry_backoff": 2,
        "retry_backoff_max": 300,
        "retry_jitter": True,
        "max_retries": MAX_RETRIES,
    }

    @app.task(name=PERSIST_EVENT, soft_time_limit=30, time_limit=60, **options)  # type: ignore[untyped-decorator]
    def persist_event_task(self: Task, envelope: dict[str, Any]) -> None:
        result = persist_event(ctx.sessions(), envelope)
        if result.call_over:
            publish_post_call(self.app, result.call_sid)
        if result.staff_alert:
            for channel in configured_channels(ctx.settings):
                self.app.send_task(
                    ALERT_STAFF,
                    kwargs={"call_sid": result.call_sid, "channel": channel},
                    task_id=f"{ALERT_EFFECTS[channel]}:{result.call_sid}",
                )

    @app.task(name=POST_CALL, **(options | {"max_retries": POST_CALL_MAX_RETRIES}))  # type: ignore[untyped-decorator]
    def post_call_task(self: Task, call_sid: str, waits: int = 0) -> None:
        if waits < TRANSCRIPT_MAX_WAITS and not transcript_complete(ctx.sessions(), call_sid):
            # The last turns are still on their way through other workers: look again shortly.
            self.app.send_task(
                POST_CALL,
                kwargs={"call_sid": call_sid, "waits": waits + 1},
                countdown=TRANSCRIPT_WAIT_SECONDS,
                task_id=f"post_call:{call_sid}:wait{waits + 1}",
            )
            return
        last_try = self.request.retries >= POST_CALL_MAX_RETRIES
        run_post_call(
            ctx.sessions(),
            ctx.settings,
            call_sid,
            allow_summary_fallback=last_try,
            client_factory=ctx.openai_client_factory,
        )
        if ctx.settings.crm_webhook_url:
            self.app.send_task(SYNC_CRM, kwargs={"call_sid": call_sid}, task_id=f"crm_sync:{call_sid}")
        for channel in configured_channels(ctx.settings):
            self.app.send_task(
                DELIVER_SUMMARY,
                kwargs={"call_sid": call_sid, "channel": channel},
                task_id=f"{DELIVERY_EFFECTS[channel]}:{call_sid}",
            )

    @app.task(name=SYNC_CRM, **options)  # type: ignore[untyped-decorator]
    def sync_crm_task(self: Task, call_sid: str) -> None:
        sync_crm(ctx.sessions(), ctx.settings, call_sid, ctx.http())

    @app.task(name=DELIVER_SUMMARY, **options)  # type: ignore[untyped-decorator]
    def deliver_summary_task(self: Task, call_sid: str, channel: str) -> None:
        deliver_summary(
            ctx.sessions(), ctx.settings, call_sid, channel, http=ctx.http(), smtp_factory=ctx.smtp_factory
        )

    @app.task(name=ALERT_STAFF, **options)  # type: ignore[untyped-decorator]
    def alert_staff_task(self: Task, call_sid: str, channel: str) -> None:
        alert_staff(
            ctx.sessions(), ctx.settings, call_sid, channel, http=ctx.http(), smtp_factory=ctx.smtp_factory
        )

    @app.task(name=COMPLETE_REMOTE_CALL, **options)  # type: ignore[untyped-decorator]
    def complete_remote_call_task(self: Task, call_sid: str) -> None:
        complete_remote_call(ctx.sessions(), ctx.twilio(), call_sid)

    # The sweep is periodic: a failed run is simply replaced by the next one, so no retries.
    @app.task(name=SWEEP_STUCK_CALLS, **(options | {"max_retries": 0}))  # type: ignore[untyped-decorator]
    def sweep_stuck_calls_task(self: Task) -> int:
        sessions = ctx.sessions()
        swept = sweep_stuck_calls(sessions, ctx.settings.stuck_call_seconds)
        for call_sid in swept:
            log.warning("call_abandoned", call_sid=call_sid)
            self.app.send_task(
                COMPLETE_REMOTE_CALL, kwargs={"call_sid": call_sid}, task_id=f"{HANGUP_EFFECT}:{call_sid}"
            )
            publish_post_call(self.app, call_sid)
        for call_sid in calls_needing_post_call(sessions):
            log.warning("post_call_requeued", call_sid=call_sid)
            publish_post_call(self.app, call_sid)
        return len(swept)  # counted by the worker's metrics (calls swept); results are not stored

    # Periodic like the sweep; a full batch means more is waiting, so the next batch goes at once.
    @app.task(name=PURGE_EXPIRED_CALLS, **(options | {"max_retries": 0}))  # type: ignore[untyped-decorator]
    def purge_expired_calls_task(self: Task) -> None:
        removed = purge_expired_calls(ctx.sessions(), ctx.twilio(), ctx.settings.retention_days)
        if removed["calls"] + removed["calls_kept_for_retry"] >= PURGE_BATCH and removed["calls"]:
            self.app.send_task(PURGE_EXPIRED_CALLS)
