"""A transfer nobody answers, through the real relay, Redis, a worker process and PostgreSQL: one phone call,
one record, one summary after the caller's final hang-up; and the caller's way back may land on another
relay instance, which still knows the conversation."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from app.calls.events import MemorySink
from app.main import create_app
from app.outbox import OutboxSink
from app.sim.demo_business import demo_backend
from app.sim.harness import LocalStack, bound_port, local_stack, serve_in_background, stop_server
from app.sim.realtime_script import SimTurn
from app.sim.twilio_callbacks import caller_back, dial_ended_form, post_signed
from app.sim.twilio_caller import SimulatedCaller
from tests.e2e.calls import LOUD
from tests.integration.workers_harness import (
    Database,
    Endpoints,
    RedisServer,
    Services,
    relay_settings,
    wait_until,
)

pytestmark = pytest.mark.integration

HUMAN = "+15557654321"
SCRIPT = [
    SimTurn(
        hears="Can I talk to a person please",
        say="Of course, connecting you now.",
        tool="transfer_to_human",
        arguments={"reason": "caller_asked", "summary": "Wants a person."},
    ),
    # (The simulator opens every new session, the way back included, with its own first line.)
    SimTurn(hears="Just ask Doctor Lee to call me back", say="I will pass that on. Goodbye."),
]


async def _transfer(stack: LocalStack, caller: SimulatedCaller) -> str:
    """Talk until the agent hands the call over; returns the `<Dial action>` URL Twilio would call."""
    assert stack.rest is not None
    await caller.dial()
    await caller.connect()
    await caller.wait_agent_audio(timeout=10)
    await caller.wait_agent_silent(quiet=0.3, timeout=10)  # the greeting played out
    caller.say(LOUD)
    request = await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=20)
    assert request.form.get("StatusCallback", "").endswith("/twilio/call/status")
    dial = ET.fromstring(request.form["Twiml"]).find("Dial")
    assert dial is not None
    return dial.get("action") or ""


async def _no_answer(stack: LocalStack, action: str, call_sid: str, relay_url: str) -> str:
    settings = stack.settings
    response = await post_signed(
        action,
        dial_ended_form(call_sid, "no-answer"),
        auth_token=settings.auth_token(),
        public_base_url=settings.public_base_url or "",
        relay_url=relay_url,
    )
    assert response.status_code == 200, response.text
    return response.text


async def test_an_unanswered_transfer_is_one_call_summarised_once_after_the_final_hang_up(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
) -> None:
    services.worker("segments", concurrency=2, env={"SUMMARY_WEBHOOK_URL": f"{fresh_endpoints.url}/slack"})
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url))
    sink.start()
    overrides = {"human_transfer_number": HUMAN}
    try:
        async with local_stack(
            sink=sink, first_audio_delay=0.05, script=SCRIPT, twilio_rest=True, settings_overrides=overrides
        ) as stack:
            async with stack.caller(caller_state="NY") as caller:
                action = await _transfer(stack, caller)
            sid = caller.call_sid
            twiml = await _no_answer(stack, action, sid, stack.relay_url)
            # The first segment and the hand-off's result are stored; the phone call is not over yet.
            await asyncio.to_thread(
                wait_until,
                lambda: (
                    pg.scalar("SELECT result FROM transfer_attempts WHERE call_sid = :s", s=sid)
                    == "no-answer"
                    and pg.scalar("SELECT status FROM calls WHERE call_sid = :s", s=sid) == "transferring"
                ),
                30,
                "the first segment and the transfer's result",
            )
            async with caller_back(caller, twiml) as back:
                await back.connect()
                await back.wait_agent_silent(quiet=0.3, timeout=15)
                back.say(LOUD)
                await back.wait_agent_audio(timeout=15, since=await back.wait_said(timeout=5))
                await back.wait_agent_silent(quiet=0.5, timeout=15)
            await asyncio.sleep(0.3)  # the relay notices the hang-up and hands CallEnded to the outbox
        await asyncio.to_thread(
            wait_until,
            lambda: (
                pg.scalar(
                    "SELECT count(*) FROM deliveries WHERE call_sid = :s AND effect = 'summary_webhook' "
                    "AND status = 'done'",
                    s=sid,
                )
                == 1
            ),
            45,
            "the summary delivered to staff",
        )
        await asyncio.to_thread(wait_until, broker.idle, 30, "the queue to drain")
    finally:
        sink.close()

    segments = pg.rows(
        "SELECT segment, end_reason, model, ended_at FROM call_segments WHERE call_sid = :s ORDER BY segment",
        s=sid,
    )
    assert [(row.segment, row.end_reason, row.model) for row in segments] == [
        (1, "transferred", "gpt-realtime-mini"),
        (2, "caller_hung_up", "gpt-realtime"),
    ]
    call = pg.rows(
        "SELECT status, end_reason, model, ended_at, segment_count FROM calls WHERE call_sid = :s",
        s=sid,
    )[0]
    assert (call.status, call.end_reason, call.model, call.segment_count) == (
        "ended",
        "caller_hung_up",
        "gpt-realtime-mini",
        2,
    )
    assert call.ended_at == segments[1].ended_at
    outcome = pg.scalar("SELECT outcome FROM call_outcomes WHERE call_sid = :s", s=sid)
    assert outcome not in {None, "transferred"}
    # One summary, delivered once, after the caller's final hang-up, covering both segments.
    posts = fresh_endpoints.to("/slack")
    assert len(posts) == 1
    delivered_at = pg.scalar(
        "SELECT completed_at FROM deliveries WHERE call_sid = :s AND effect = 'summary_webhook'", s=sid
    )
    assert delivered_at > segments[1].ended_at
    text = posts[0].json()["text"]
    assert "Can I talk to a person please" in text
    assert "Just ask Doctor Lee to call me back" in text
    turns = pg.rows("SELECT seq, speaker, text FROM transcript_turns WHERE call_sid = :s ORDER BY seq", s=sid)
    caller_lines = [row.text for row in turns if row.speaker == "caller"]
    assert caller_lines == ["Can I talk to a person please", "Just ask Doctor Lee to call me back"]


async def test_a_caller_back_from_a_transfer_on_another_relay_instance_resumes_the_conversation(
    broker: RedisServer,
) -> None:
    overrides = {"human_transfer_number": HUMAN, "redis_url": broker.url}
    async with local_stack(
        first_audio_delay=0.05, script=SCRIPT, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        async with stack.caller(caller_state="NY") as caller:
            action = await _transfer(stack, caller)
        # Twilio's next requests reach a second relay instance, sharing only Redis with the first.
        other = create_app(stack.settings, sink=MemorySink(), business=demo_backend)
        server = await serve_in_background(other)
        try:
            other_url = f"http://127.0.0.1:{bound_port(server)}"
            twiml = await _no_answer(stack, action, caller.call_sid, other_url)
            sessions_before = len(stack.sim.sessions)
            async with caller_back(caller, twiml, relay_url=other_url) as back:
                await back.connect()
                await back.wait_agent_audio(timeout=10)
            session = stack.sim.sessions[sessions_before]
            instructions = session.received_of("session.update")[0]["session"]["instructions"]
            assert "Can I talk to a person please" in instructions
            assert "connecting you now" in instructions.lower()
            assert "do not greet" in instructions.lower()
            assert session.model == "gpt-realtime"
        finally:
            await stop_server(server)
