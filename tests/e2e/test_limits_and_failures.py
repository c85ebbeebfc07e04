"""Cost limits, recording consent, and surviving a failing model connection."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from typing import Any

from app.calls.events import CallEnded, CallNote, ConsentDecision, MemorySink, RecordingStarted
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import answered, speak_and_hear_reply

HUMAN = "+15557654321"


def _instructions(creates: list[dict[str, Any]]) -> list[str]:
    return [str((c.get("response") or {}).get("instructions", "")) for c in creates]


async def test_duration_cap_warns_then_says_goodbye_and_hangs_up() -> None:
    sink = MemorySink()
    overrides = {
        "max_call_seconds": 10,
        "max_call_warning_seconds": 6,
        "idle_prompt_seconds": 60,
        "idle_hangup_seconds": 90,
    }
    async with local_stack(
        sink=sink, first_audio_delay=0.05, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            started = time.monotonic()
            await stack.rest.wait_for_request(lambda r: r.form.get("Status") == "completed", timeout=20)
            elapsed = time.monotonic() - started
            assert caller.player.idle
        said = _instructions(stack.sim.sessions[0].received_of("response.create"))
        assert any("thirty seconds" in s for s in said), said
        assert any("time limit" in s for s in said), said
        assert 10 <= elapsed < 16
    assert [e.end_reason for e in sink.events if isinstance(e, CallEnded)] == ["capped"]


async def test_a_silent_caller_is_asked_then_said_goodbye_to() -> None:
    sink = MemorySink()
    overrides = {"idle_prompt_seconds": 1.0, "idle_hangup_seconds": 3.0}
    async with local_stack(
        sink=sink, first_audio_delay=0.05, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await stack.rest.wait_for_request(lambda r: r.form.get("Status") == "completed", timeout=20)
        said = _instructions(stack.sim.sessions[0].received_of("response.create"))
        assert any("still there" in s for s in said), said
        assert any("hang up now" in s for s in said), said
    assert [e.end_reason for e in sink.events if isinstance(e, CallEnded)] == ["idle"]


async def test_a_talking_caller_is_not_treated_as_idle() -> None:
    overrides = {"idle_prompt_seconds": 1.5, "idle_hangup_seconds": 3.0}
    script = [
        SimTurn(hears="a", say="Sure."),
        SimTurn(hears="b", say="Okay."),
        SimTurn(hears="c", say="Yes."),
    ]
    async with local_stack(first_audio_delay=0.05, script=script, settings_overrides=overrides) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            for _ in range(3):
                await caller.wait_agent_silent(quiet=0.3, timeout=10)
                await speak_and_hear_reply(caller)
        said = _instructions(stack.sim.sessions[0].received_of("response.create"))
        assert not any("still there" in s for s in said)


async def test_two_party_state_hears_the_notice_before_recording_starts() -> None:
    sink = MemorySink()
    overrides = {"recording_enabled": True}
    async with local_stack(
        sink=sink, first_audio_delay=0.05, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        async with stack.caller(caller_state="CA") as caller:
            await caller.dial()
            await caller.connect()
            await stack.rest.wait_for_request(lambda r: r.path.endswith("/Recordings.json"), timeout=10)
            recorded_at = time.perf_counter()
            assert caller.player.idle and caller.player.play_clock <= recorded_at, "greeting heard first"
        greeting = _instructions(stack.sim.sessions[0].received_of("response.create"))[0]
        assert "This call may be recorded." in greeting
    decisions = [e for e in sink.events if isinstance(e, ConsentDecision)]
    assert len(decisions) == 1
    assert decisions[0].notice_required and decisions[0].reason == "two_party_state:CA"
    assert decisions[0].notice_played_at is not None
    assert [e.recording_sid[:2] for e in sink.events if isinstance(e, RecordingStarted)] == ["RE"]


async def test_one_party_state_records_without_a_notice() -> None:
    sink = MemorySink()
    overrides = {"recording_enabled": True}
    async with local_stack(
        sink=sink, first_audio_delay=0.05, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        async with stack.caller(caller_state="NY") as caller:
            await caller.dial()
            await caller.connect()
            await stack.rest.wait_for_request(lambda r: r.path.endswith("/Recordings.json"), timeout=10)
        greeting = _instructions(stack.sim.sessions[0].received_of("response.create"))[0]
        assert "recorded" not in greeting
    (decision,) = [e for e in sink.events if isinstance(e, ConsentDecision)]
    assert not decision.notice_required and decision.reason == "one_party_state:NY"


async def test_model_drop_reconnects_with_history_and_no_second_greeting() -> None:
    sink = MemorySink()
    script = [SimTurn(hears="what are your hours", say="Nine to five."), SimTurn(say="As I was saying.")]
    async with local_stack(sink=sink, first_audio_delay=0.05, script=script) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await speak_and_hear_reply(caller)
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
            before = caller.received_media_bytes
            await stack.sim.sessions[0].drop(1011)
            second = await stack.sim.wait_for_session(1, timeout=5)
            await second.wait_for("response.create", timeout=5)
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
            assert caller.received_media_bytes - before > 8 * 500, "filler and the apology were heard"
            assert not caller.closed_by_relay.is_set()
        update = second.received_of("session.update")[0]["session"]
        assert "do not greet the caller again" in update["instructions"]
        assert "Caller: what are your hours" in update["instructions"]
        assert "Do not greet again" in _instructions(second.received_of("response.create"))[0]
    assert "model_reconnected" in [e.tag for e in sink.events if isinstance(e, CallNote)]


async def test_session_cap_close_is_reconnected_too() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await stack.sim.sessions[0].close(1001)
            await stack.sim.wait_for_session(1, timeout=5)
            assert not caller.closed_by_relay.is_set()


async def test_invalid_key_is_not_retried_and_the_caller_goes_to_a_person() -> None:
    sink = MemorySink()
    overrides = {"human_transfer_number": HUMAN}
    async with local_stack(
        sink=sink,
        twilio_rest=True,
        settings_overrides=overrides,
        sim_options={"reject_with_error": ("invalid_api_key", "Incorrect API key provided.")},
    ) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            request = await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=10)
        await asyncio.sleep(0.5)
        assert len(stack.sim.sessions) == 1, "an auth error is not retried"
        twiml = ET.fromstring(request.form["Twiml"])
        assert twiml.find("Say") is not None
        dial = twiml.find("Dial")
        assert dial is not None and dial.text == HUMAN
    assert "model_failed" in [e.tag for e in sink.events if isinstance(e, CallNote)]


async def test_unreachable_model_without_a_human_gets_an_apology_and_a_clean_hang_up() -> None:
    async with local_stack(twilio_rest=True, sim_options={"fail_auth": True}) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            request = await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=10)
        twiml = ET.fromstring(request.form["Twiml"])
        assert twiml.find("Dial") is None
        assert twiml.find("Hangup") is not None
        assert "call again later" in (twiml.find("Say").text or "")  # type: ignore[union-attr]
