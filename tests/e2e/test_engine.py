"""The offline engine behind the real relay: the relay's own e2e checks pass against it, it hears what the
caller says, calls the business's tools and voices what they returned, and honours barge-in."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.calls.events import MemorySink, ToolInvocation, TranscriptTurn
from app.sim import harness
from app.sim.engine.server import engine_server, warm_up
from app.sim.engine.tts import speak
from app.sim.harness import LocalStack
from tests.e2e import test_call_basics as basics

GREETING = (
    "This call may be recorded. Thanks for calling Bright Smile Dental, this is the virtual receptionist. "
    "How can I help you today?"
)


@contextlib.asynccontextmanager
async def engine_stack(**options: Any) -> AsyncIterator[LocalStack]:
    """`local_stack` with the offline engine as the model (script and pacing options do not apply)."""
    for scripted in ("script", "first_audio_delay", "realtime_factor", "tts", "sim_options"):
        options.pop(scripted, None)
    async with harness.local_stack(model=engine_server(), **options) as stack:
        yield stack


@pytest.fixture(scope="module", autouse=True)
def _engine_ready() -> None:
    """Speech models loaded and the greeting synthesised once, as `voice-agent engine` does at start."""
    asyncio.run(warm_up())
    speak(GREETING)


UNSCRIPTED_BASICS: list[Callable[[], Awaitable[None]]] = [
    basics.test_greeting_is_ready_when_the_stream_starts,
    basics.test_greeting_within_half_a_second_even_when_the_stream_comes_at_once,
    basics.test_session_is_configured_for_the_phone,
    basics.test_forged_webhook_gets_403_and_opens_nothing,
    basics.test_forged_stream_upgrade_is_refused_before_accept,
    basics.test_start_without_the_webhooks_token_is_refused,
    basics.test_preopened_session_is_closed_when_the_stream_never_comes,
    basics.test_stream_on_another_instance_opens_its_own_session,
    basics.test_caller_hang_up_closes_the_model_session_at_once,
    basics.test_dtmf_reaches_the_model_as_caller_input,
    basics.test_pcm16_mode_converts_both_directions,
    basics.test_metrics_count_calls_and_greeting_latency_without_caller_details,
    basics.test_a_full_relay_refuses_new_calls_so_twilio_uses_the_fallback,
]


@pytest.mark.parametrize("relay_test", UNSCRIPTED_BASICS, ids=lambda test: test.__name__)
async def test_relay_basics_pass_against_the_engine(
    relay_test: Callable[[], Awaitable[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(basics, "local_stack", engine_stack)
    await relay_test()


def _saturday(zone: ZoneInfo) -> str:
    today = dt.datetime.now(zone).date()
    return (today + dt.timedelta(days=(5 - today.weekday()) % 7)).isoformat()


@pytest.mark.parametrize("audio_format", ["pcmu", "pcm16"])
async def test_the_engine_hears_the_caller_calls_the_tool_and_voices_its_result(audio_format: str) -> None:
    sink = MemorySink()
    overrides = {"realtime_audio_format": audio_format}
    async with engine_stack(sink=sink, settings_overrides=overrides) as stack:
        async with stack.caller(caller_state="NY") as caller:
            await caller.dial()
            await caller.connect()
            await caller.wait_agent_silent(quiet=0.5, timeout=20)
            await caller.say_text("What are your opening hours on Saturday?")
            said = await caller.wait_said(timeout=10)
            await caller.wait_agent_audio(timeout=20, since=said)
            await caller.wait_agent_silent(quiet=1.5, timeout=30)
        session = stack.sim.sessions[0]
        transcription = await session.wait_for_sent("conversation.item.input_audio_transcription.completed")
        assert stack.sim.validation_errors == []
    assert "saturday" in transcription["transcript"], "the transcription carries what was recognised"
    tools = [event for event in sink.events if isinstance(event, ToolInvocation)]
    assert [(tool.name, tool.arguments) for tool in tools] == [
        ("lookup_hours", {"date": _saturday(ZoneInfo(stack.settings.business_timezone))})
    ]
    agent = [
        event.text for event in sink.events if isinstance(event, TranscriptTurn) and event.speaker == "agent"
    ]
    # The demo office opens 10:00-14:00 on Saturdays: the agent says what the tool returned.
    assert any("ten in the morning until two in the afternoon" in text for text in agent), agent


async def test_barge_in_on_the_engine_truncates_and_cancels_like_the_service() -> None:
    async with engine_stack() as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await caller.wait_agent_audio(timeout=10)
            await asyncio.sleep(1.0)  # the greeting is several seconds long: talk over it
            caller.say(bytes([0x10, 0x90] * 4000))
            session = stack.sim.sessions[0]
            truncate = await session.wait_for("conversation.item.truncate", timeout=10)
            truncated = await session.wait_for_sent("conversation.item.truncated", timeout=5)
        assert truncated["item_id"] == truncate["item_id"]
        assert 500 < truncated["audio_end_ms"] < 3000
        assert session.truncations == [(truncate["item_id"], truncate["audio_end_ms"])]
        assert stack.sim.validation_errors == [] and stack.sim.race_errors == []
