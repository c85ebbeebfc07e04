"""A call whose relay died is swept by the real beat, finalised by the real worker and hung up over REST;
a call on a healthy relay is left alone; and a second beat refuses to start."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.calls.events import CallHeartbeat
from app.outbox import OutboxSink
from app.sim.twilio_rest import SimulatedTwilioRest
from tests.integration.workers_harness import (
    Database,
    RedisServer,
    Services,
    call_sid,
    relay_settings,
    scripted_call,
    wait_until,
)

pytestmark = pytest.mark.integration

ACCOUNT = "AC" + "5" * 32
TOKEN = "sweeper-token"


def test_a_call_whose_relay_died_is_swept_finalised_and_hung_up(
    tmp_path: Path, pg: Database, pg_url: str, broker: RedisServer, services: Services
) -> None:
    with SimulatedTwilioRest(ACCOUNT, TOKEN) as twilio:
        env = {
            "SWEEP_INTERVAL_SECONDS": "1",
            "STUCK_CALL_SECONDS": "3",
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_API_BASE_URL": twilio.base_url,
        }
        services.worker("sweeper", concurrency=2, env=env)
        beat = services.beat(env=env)
        beat.wait_for_log("beat: lock acquired")

        dead, alive = call_sid(31), call_sid(32)
        twilio.add_call(dead, status="in-progress")
        twilio.add_call(alive, status="in-progress")
        dying_relay = OutboxSink(relay_settings(tmp_path / "a", pg_url, broker.url, heartbeat_seconds=0.5))
        healthy_relay = OutboxSink(relay_settings(tmp_path / "b", pg_url, broker.url, heartbeat_seconds=0.5))
        dying_relay.start()
        healthy_relay.start()
        try:
            # The calls began a few seconds ago: their last scripted events are happening now.
            for event in scripted_call(dead, turns=4, ended=False, start=time.time() - 10):
                dying_relay.emit(event)
            for event in scripted_call(alive, turns=2, ended=False, start=time.time() - 6):
                healthy_relay.emit(event)
            assert dying_relay.flush(10)
            wait_until(lambda: pg.scalar("SELECT count(*) FROM transcript_turns") == 6, 20, "the checkpoints")
            dying_relay.close()  # the relay dies: no CallEnded, no more heartbeats on either path
            died_at = time.monotonic()

            def keep_alive() -> bool:
                healthy_relay.emit(CallHeartbeat(alive, time.time()))
                return bool(
                    pg.scalar("SELECT status FROM calls WHERE call_sid = :sid", sid=dead) == "abandoned"
                )

            wait_until(keep_alive, 30, "the sweep", interval=0.3)
            swept_after = time.monotonic() - died_at
            wait_until(
                lambda: (
                    pg.scalar(
                        "SELECT count(*) FROM deliveries WHERE call_sid = :sid AND status = 'done'", sid=dead
                    )
                    == 4
                ),
                30,
                "post-call work and the REST hang-up",
            )
            finalised_after = time.monotonic() - died_at

            second = services.beat("second-beat", env=env)
            assert second.proc.wait(30) == 1
            assert "only one beat may run" in second.log()
            assert beat.proc.poll() is None  # the first beat carries on
            healthy_relay.emit(CallHeartbeat(alive, time.time()))
        finally:
            healthy_relay.close()
            dying_relay.close()

        call = pg.rows(
            "SELECT status, end_reason, ended_at, swept_at FROM calls WHERE call_sid = :sid", sid=dead
        )[0]
        assert (call.status, call.end_reason) == ("abandoned", "abandoned")
        assert call.swept_at > call.ended_at
        assert pg.scalar("SELECT count(*) FROM transcript_turns WHERE call_sid = :sid", sid=dead) == 4
        assert pg.scalar("SELECT outcome FROM call_outcomes WHERE call_sid = :sid", sid=dead) == "booked"
        assert pg.scalar("SELECT method FROM call_summaries WHERE call_sid = :sid", sid=dead) == "extractive"
        hangup = pg.rows(
            "SELECT detail FROM deliveries WHERE call_sid = :sid AND effect = 'twilio_hangup'", sid=dead
        )[0]
        assert hangup.detail == {"status_before": "in-progress", "completed": True}
        completions = [
            r for r in twilio.requests if r.method == "POST" and r.form.get("Status") == "completed"
        ]
        assert [r.path.rsplit("/", 1)[1] for r in completions] == [f"{dead}.json"]
        remote = twilio.call(dead)
        assert remote is not None and remote.status == "completed"
        assert pg.scalar("SELECT status FROM calls WHERE call_sid = :sid", sid=alive) == "live"
        print(
            f"\nrelay died: call swept {swept_after:.1f} s later (stuck threshold 3 s, sweep every 1 s), "
            f"finalised and hung up over REST {finalised_after:.1f} s later"
        )
