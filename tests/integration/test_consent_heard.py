"""Consent that was really heard, through the real relay, Redis, a worker process and PostgreSQL: a caller who
talks over the recording notice gets it again, and recording starts only once it was heard in full; the
recording's status callback stores its SID, URL and duration with the call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.outbox import OutboxSink
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from app.sim.twilio_callbacks import post_signed, recording_status_form
from tests.e2e.calls import LOUD
from tests.integration.workers_harness import Database, RedisServer, Services, relay_settings, wait_until

pytestmark = pytest.mark.integration

NOTICE = "This call may be recorded."


async def test_a_caller_talking_over_the_notice_gets_it_again_before_any_recording_starts(
    tmp_path: Path, pg: Database, pg_url: str, broker: RedisServer, services: Services
) -> None:
    services.worker("consent", concurrency=2)
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url))
    sink.start()
    script = [SimTurn(hears="Hello? Is anyone there?", say="Yes, I'm here. How can I help?")]
    overrides = {"recording_enabled": True, "recording_consent": "auto"}
    try:
        async with local_stack(
            sink=sink, first_audio_delay=0.05, script=script, twilio_rest=True, settings_overrides=overrides
        ) as stack:
            rest = stack.rest
            assert rest is not None
            async with stack.caller(caller_state="CA") as caller:  # a two-party consent state
                await caller.dial()
                await caller.connect()
                await caller.wait_agent_audio(timeout=10)
                caller.say(LOUD)  # "hello?" over the greeting and its notice
                recording = await rest.wait_for_request(lambda r: r.path.endswith("/Recordings.json"), 30)
                assert caller.clears, "the caller's words cut the greeting"
                await caller.wait_agent_silent(quiet=0.5, timeout=15)
            sid = caller.call_sid
            callback = recording.form["RecordingStatusCallback"]
            assert callback == "https://relay.example.test/twilio/recording/status"
            await asyncio.to_thread(
                wait_until,
                lambda: pg.scalar("SELECT count(*) FROM recordings WHERE call_sid = :s", s=sid) == 1,
                30,
                "the recording row",
            )
            recording_sid = pg.scalar("SELECT recording_sid FROM recordings WHERE call_sid = :s", s=sid)
            form = recording_status_form(stack.settings.twilio_account_sid or "", sid, recording_sid, 42)
            answer = await post_signed(
                callback,
                form,
                auth_token=stack.settings.auth_token(),
                public_base_url=stack.settings.public_base_url or "",
                relay_url=stack.relay_url,
            )
            assert answer.status_code == 204
            await asyncio.sleep(0.3)  # the relay notices the hang-up and hands CallEnded to the outbox
        await asyncio.to_thread(
            wait_until,
            lambda: (
                pg.scalar("SELECT verdict FROM consent_audits WHERE call_sid = :s", s=sid) is not None
                and pg.scalar("SELECT url FROM recordings WHERE call_sid = :s", s=sid) is not None
            ),
            45,
            "the consent audit and the recording's status",
        )
    finally:
        sink.close()

    attempts = pg.rows(
        "SELECT attempt, heard, said, why_not, at FROM consent_notice_attempts "
        "WHERE call_sid = :s ORDER BY attempt",
        s=sid,
    )
    assert [(row.attempt, row.heard, row.why_not) for row in attempts[:1]] == [(1, False, "interrupted")]
    assert attempts[-1].heard and attempts[-1].said == NOTICE
    assert all(not row.heard for row in attempts[:-1])
    played_at = pg.scalar("SELECT notice_played_at FROM consent_decisions WHERE call_sid = :s", s=sid)
    assert played_at is not None and played_at >= attempts[-1].at
    row = pg.rows("SELECT started_at, url, duration_seconds FROM recordings WHERE call_sid = :s", s=sid)[0]
    assert row.started_at > played_at  # recording waited for the notice heard in full
    assert row.url.endswith(f"/Recordings/{recording_sid}") and row.duration_seconds == 42
    audit = pg.rows(
        "SELECT verdict, notice_attempts, notice_said FROM consent_audits WHERE call_sid = :s", s=sid
    )[0]
    assert (audit.verdict, audit.notice_attempts, audit.notice_said) == ("compliant", len(attempts), NOTICE)
