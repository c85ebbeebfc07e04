"""A call through the real relay ends up in PostgreSQL: relay -> outbox -> Redis -> worker -> Postgres."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from app.outbox import OutboxSink
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import answered, speak_and_hear_reply
from tests.integration.workers_harness import Database, RedisServer, Services, relay_settings, wait_until

pytestmark = pytest.mark.integration


def _next_weekday_ten() -> str:
    day = dt.date.today() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return f"{day.isoformat()}T10:00:00-05:00"


async def test_a_simulated_call_through_the_relay_is_stored_with_outcome_and_summary(
    tmp_path: Path, pg: Database, pg_url: str, broker: RedisServer, services: Services
) -> None:
    services.worker("relay-e2e", concurrency=2)
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url))
    sink.start()
    script = [
        SimTurn(
            hears="I'd like to book a cleaning",
            say="Let me book that.",
            tool="book_appointment",
            arguments={"name": "Sam Lee", "service": "cleaning", "start": _next_weekday_ten()},
        ),
        SimTurn(say="You are booked. See you then."),
    ]
    try:
        async with local_stack(sink=sink, first_audio_delay=0.05, script=script) as stack:
            async with stack.caller(from_number="+15551112222", caller_state="NY") as caller:
                await answered(caller)
                await speak_and_hear_reply(caller)
                await caller.wait_agent_silent(quiet=0.6, timeout=15)
            sid = caller.call_sid
            await asyncio.sleep(0.3)
        await asyncio.to_thread(
            wait_until,
            lambda: pg.scalar("SELECT count(*) FROM call_summaries WHERE call_sid = :sid", sid=sid) == 1,
            30,
            "the summary",
        )
    finally:
        sink.close()

    call = pg.rows(
        "SELECT status, end_reason, from_number, caller_state, model FROM calls WHERE call_sid = :s", s=sid
    )
    assert [tuple(row) for row in call] == [
        ("ended", "caller_hung_up", "+15551112222", "NY", "gpt-realtime-mini")
    ]
    turns = pg.rows("SELECT speaker, text FROM transcript_turns WHERE call_sid = :s ORDER BY seq", s=sid)
    assert [row.speaker for row in turns] == ["agent", "caller", "agent", "agent"]
    assert turns[1].text == "I'd like to book a cleaning"
    assert turns[3].text == "You are booked. See you then."
    tool = pg.rows("SELECT name, ok FROM tool_invocations WHERE call_sid = :s", s=sid)
    assert [tuple(row) for row in tool] == [("book_appointment", True)]
    assert pg.scalar("SELECT outcome FROM call_outcomes WHERE call_sid = :s", s=sid) == "booked"
    assert pg.scalar("SELECT method FROM call_summaries WHERE call_sid = :s", s=sid) == "extractive"
    assert pg.scalar("SELECT notice_required FROM consent_decisions WHERE call_sid = :s", s=sid) is False
