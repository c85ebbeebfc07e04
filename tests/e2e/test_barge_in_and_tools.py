"""Barge-in done right, and tools that never leave the caller in silence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from app.calls.events import MemorySink, ToolInvocation, TranscriptTurn
from app.sim.harness import bound_port, local_stack, serve_in_background, stop_server
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import LOUD, answered, speak_and_hear_reply


async def test_barge_in_clears_twilio_and_truncates_at_heard_audio() -> None:
    script = [SimTurn(hears="tell me everything", audio_seconds=8.0)]
    async with local_stack(first_audio_delay=0.05, script=script) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            greeting_heard = len(caller.heard_audio())
            caller.say(LOUD)
            said = await caller.wait_said(timeout=5)
            await caller.wait_agent_audio(timeout=10, since=said)
            await asyncio.sleep(1.5)  # the caller hears 1.5 s of the long answer, then talks over it
            caller.say(LOUD)
            session = stack.sim.sessions[0]
            truncate = await session.wait_for("conversation.item.truncate", timeout=5)
            assert caller.clears, "Twilio was told to drop its buffer"
            reply_heard_ms = (len(caller.heard_audio()) - greeting_heard) / 8
            received_at_clear = caller.received_media_bytes
            await asyncio.sleep(0.8)
            assert len(caller.heard_audio()) - greeting_heard == reply_heard_ms * 8, (
                "nothing plays after clear"
            )
        heard_ms = truncate["audio_end_ms"]
        # What the relay says was heard matches what the caller's player really played, within a couple of
        # playback ticks, and is far below the seconds of audio that had already been sent.
        assert abs(heard_ms - reply_heard_ms) <= 60
        assert 1400 < heard_ms < 3000
        assert session.truncations == [(truncate["item_id"], heard_ms)]
        # Late deltas of the interrupted reply never refill Twilio's buffer.
        assert caller.received_media_bytes == received_at_clear
        assert stack.sim.validation_errors == []


async def test_barge_in_cancels_an_active_response_once() -> None:
    script = [SimTurn(hears="question", audio_seconds=20.0)]
    async with local_stack(first_audio_delay=0.05, realtime_factor=1.0, script=script) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await speak_and_hear_reply(caller)
            await asyncio.sleep(0.5)
            caller.say(LOUD)
            session = stack.sim.sessions[0]
            cancel = await session.wait_for("response.cancel", timeout=5)
            await asyncio.sleep(0.3)
        assert cancel["response_id"] in session.cancelled_responses
        assert len(session.received_of("response.cancel")) == 1
        errors = [e for e in session.sent if e["type"] == "error"]
        assert errors == []


async def test_interrupted_agent_turn_is_stored_as_heard() -> None:
    sink = MemorySink()
    long_line = " ".join(["This is a very long answer about our many services"] * 6)
    script = [SimTurn(hears="tell me", say=long_line)]
    async with local_stack(sink=sink, first_audio_delay=0.05, script=script) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await speak_and_hear_reply(caller)
            await asyncio.sleep(1.0)
            caller.say(LOUD)
            await stack.sim.sessions[0].wait_for("conversation.item.truncate", timeout=5)
    turns = [e for e in sink.events if isinstance(e, TranscriptTurn)]
    agent = [t for t in turns if t.speaker == "agent"]
    assert agent[0].interrupted is False  # the greeting was heard in full
    cut = [t for t in agent if t.interrupted]
    assert cut and 0 < len(cut[0].text.split()) < len(long_line.split()) // 2
    assert any(t.speaker == "caller" and t.text == "tell me" for t in turns)


async def test_tool_call_round_trip_through_the_business_backend() -> None:
    sink = MemorySink()
    script = [
        SimTurn(hears="hours?", say="Let me check.", tool="lookup_hours", arguments={"date": "2026-11-24"}),
        SimTurn(say="We are open nine to five."),
    ]
    async with local_stack(sink=sink, first_audio_delay=0.05, script=script) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            caller.say(LOUD)
            session = stack.sim.sessions[0]
            created = await session.wait_for(
                "conversation.item.create",
                lambda e: e["item"]["type"] == "function_call_output",
                timeout=10,
            )
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
        output = json.loads(created["item"]["output"])
        assert output == {
            "date": "2026-11-24",
            "weekday": "Tuesday",
            "timezone": "America/New_York",
            "closed": False,
            "open": "09:00",
            "close": "17:00",
        }
        invocations = [e for e in sink.events if isinstance(e, ToolInvocation)]
        assert [(i.name, i.ok) for i in invocations] == [("lookup_hours", True)]
        assert stack.sim.race_errors == []
        assert stack.sim.validation_errors == []


@pytest.fixture
async def slow_backend() -> AsyncIterator[str]:
    app = FastAPI()
    delays = {"/hours": 1.4, "/availability": 5.0}

    @app.get("/hours")
    async def hours(date: str) -> JSONResponse:
        await asyncio.sleep(delays["/hours"])
        return JSONResponse({"date": date, "closed": False, "open": "09:00", "close": "17:00"})

    @app.get("/availability")
    async def availability(date: str, service: str) -> JSONResponse:
        await asyncio.sleep(delays["/availability"])
        return JSONResponse({"slots": []})

    server = await serve_in_background(app)
    try:
        yield f"http://127.0.0.1:{bound_port(server)}"
    finally:
        await stop_server(server)


async def test_slow_tool_gets_a_filler_instead_of_dead_air(slow_backend: str) -> None:
    script = [SimTurn(hears="hours?", tool="lookup_hours"), SimTurn(say="Nine to five.")]
    overrides = {"business_api_base": slow_backend, "tool_timeout_seconds": 3.0}
    async with local_stack(first_audio_delay=0.05, script=script, settings_overrides=overrides) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            caller.say(LOUD)
            session = stack.sim.sessions[0]
            filler = await session.wait_for(
                "response.create", lambda e: e.get("response", {}).get("conversation") == "none", timeout=10
            )
            await session.wait_for(
                "conversation.item.create", lambda e: e["item"]["type"] == "function_call_output", timeout=10
            )
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
        assert filler["response"]["instructions"]
        assert stack.sim.race_errors == []


async def test_tool_timeout_comes_back_as_structured_output(slow_backend: str) -> None:
    script = [
        SimTurn(hears="slots?", tool="check_availability", arguments={"service": "cleaning"}),
        SimTurn(say="Sorry, the system is slow."),
    ]
    overrides = {"business_api_base": slow_backend, "tool_timeout_seconds": 1.0}
    async with local_stack(first_audio_delay=0.05, script=script, settings_overrides=overrides) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            caller.say(LOUD)
            created = await stack.sim.sessions[0].wait_for(
                "conversation.item.create", lambda e: e["item"]["type"] == "function_call_output", timeout=10
            )
        assert json.loads(created["item"]["output"])["error"]["code"] == "timeout"
