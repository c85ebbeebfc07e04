"""A call end to end through the real relay: greeting, security gates, session lifetime, DTMF, formats."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.calls.events import CallEnded, CallStarted, MemorySink
from app.main import create_app
from app.sim.demo_business import demo_backend
from app.sim.harness import bound_port, local_stack, serve_in_background, stop_server
from app.sim.realtime_script import SimTurn
from app.sim.twilio_caller import StreamRejected, WebhookRejected
from tests.e2e.calls import answered


async def test_greeting_is_ready_when_the_stream_starts() -> None:
    # Twilio takes a few hundred ms between answering the webhook and opening the stream; the model needs
    # 300 ms to start speaking. The greeting is generated during that gap, so it plays at once.
    async with local_stack(first_audio_delay=0.3) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await asyncio.sleep(0.4)
            await caller.connect()
            first = await caller.wait_agent_audio(timeout=5)
            assert caller.start_sent_at is not None
            assert first - caller.start_sent_at < 0.1
        session = stack.sim.sessions[0]
        assert [e["type"] for e in session.received[:2]] == ["session.update", "response.create"]
        assert stack.sim.validation_errors == []


async def test_greeting_within_half_a_second_even_when_the_stream_comes_at_once() -> None:
    async with local_stack(first_audio_delay=0.3) as stack, stack.caller() as caller:
        await caller.dial()
        await caller.connect()
        first = await caller.wait_agent_audio(timeout=5)
        assert caller.start_sent_at is not None
        assert first - caller.start_sent_at < 0.5


async def test_session_is_configured_for_the_phone() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await caller.wait_agent_audio(timeout=5)
        update = stack.sim.sessions[0].received_of("session.update")[0]["session"]
        assert update["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert update["audio"]["output"]["format"] == {"type": "audio/pcmu"}
        assert update["audio"]["input"]["turn_detection"]["interrupt_response"] is False
        assert {tool["name"] for tool in update["tools"]} >= {"lookup_hours", "book_appointment"}
        assert "Bright Smile Dental" in update["instructions"]


async def test_forged_webhook_gets_403_and_opens_nothing() -> None:
    async with local_stack() as stack:
        caller = stack.caller()
        with pytest.raises(WebhookRejected) as rejected:
            await caller.dial(forge_signature=True)
        assert rejected.value.status_code == 403
        with pytest.raises(WebhookRejected):
            await caller.dial(sign=False)
        await asyncio.sleep(0.1)
        assert stack.sim.sessions == []
        assert stack.relay.calls == {}


async def test_forged_stream_upgrade_is_refused_before_accept() -> None:
    async with local_stack() as stack, stack.caller() as caller:
        await caller.dial()
        with pytest.raises(StreamRejected):
            await caller.connect(forge_signature=True)


async def test_start_without_the_webhooks_token_is_refused() -> None:
    async with local_stack() as stack, stack.caller() as caller:
        await caller.dial()
        caller.parameters["token"] = "0" * 32
        await caller.connect()
        assert await caller.wait_closed_by_relay(timeout=5) == 1008
        assert caller.received_media_bytes == 0


async def test_preopened_session_is_closed_when_the_stream_never_comes() -> None:
    async with local_stack(settings_overrides={"preopen_ttl_seconds": 0.5}) as stack:
        caller = stack.caller()
        await caller.dial()
        session = await stack.sim.wait_for_session(0, timeout=5)
        await asyncio.wait_for(session.closed.wait(), timeout=3)
        assert stack.relay.calls == {}


async def test_stream_on_another_instance_opens_its_own_session() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        other_app = create_app(stack.settings, sink=MemorySink(), business=demo_backend)
        other = await serve_in_background(other_app)
        try:
            caller = stack.caller()
            await caller.dial()  # webhook lands on the first relay...
            caller.relay_url = f"http://127.0.0.1:{bound_port(other)}"  # ...the stream on the second
            async with caller:
                await caller.connect()
                await caller.wait_agent_audio(timeout=5)
            assert len(stack.sim.sessions) == 2
        finally:
            await stop_server(other)


async def test_caller_hang_up_closes_the_model_session_at_once() -> None:
    sink = MemorySink()
    async with local_stack(sink=sink, first_audio_delay=0.05) as stack:
        caller = stack.caller()
        await caller.dial()
        await caller.connect()
        await caller.wait_agent_audio(timeout=5)
        await caller.hang_up()
        session = stack.sim.sessions[0]
        await asyncio.wait_for(session.closed.wait(), timeout=1)
    started = [e for e in sink.events if isinstance(e, CallStarted)]
    ended = [e for e in sink.events if isinstance(e, CallEnded)]
    assert len(started) == 1 and started[0].caller_state == "CA"
    assert [e.end_reason for e in ended] == ["caller_hung_up"]


async def test_dtmf_reaches_the_model_as_caller_input() -> None:
    async with local_stack(first_audio_delay=0.05, script=[SimTurn(say="You pressed five.")]) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await caller.press("5")
            session = stack.sim.sessions[0]
            item = await session.wait_for("conversation.item.create", timeout=3)
            assert "5" in item["item"]["content"][0]["text"]
            await session.wait_for(
                "response.create", lambda e: len(session.received_of("response.create")) >= 2
            )
        assert stack.sim.race_errors == []


async def test_pcm16_mode_converts_both_directions() -> None:
    overrides = {"realtime_audio_format": "pcm16"}
    script = [SimTurn(hears="hello", say="Hello to you too, how are you doing today?")]
    async with local_stack(first_audio_delay=0.05, settings_overrides=overrides, script=script) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            greeting_bytes = caller.received_media_bytes
            caller.say(bytes([0x10, 0x90] * 4000))  # one second of loud speech-like mu-law
            await caller.wait_agent_audio(timeout=10, since=await caller.wait_said(timeout=5))
            await caller.wait_agent_silent(quiet=0.3, timeout=10)
            assert caller.received_media_bytes > greeting_bytes
        session = stack.sim.sessions[0]
        config = session.received_of("session.update")[0]["session"]
        assert config["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        appended = session.received_of("input_audio_buffer.append")
        assert appended, "caller audio reached the model"
        assert stack.sim.validation_errors == []


async def test_fly_replay_names_this_machine_and_replays_streams_for_another() -> None:
    overrides = {"stream_affinity": "fly-replay", "fly_machine_id": "aaa111"}
    async with local_stack(first_audio_delay=0.05, settings_overrides=overrides) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            assert caller.stream_url == "wss://relay.example.test/twilio/stream/aaa111"
            await caller.connect()
            await caller.wait_agent_audio(timeout=5)
        async with stack.caller() as elsewhere:
            await elsewhere.dial()
            elsewhere.stream_url = "wss://relay.example.test/twilio/stream/bbb222"
            with pytest.raises(StreamRejected) as replayed:
                await elsewhere.connect()
            assert replayed.value.status_code == 409
            with pytest.raises(StreamRejected) as forged:
                await elsewhere.connect(forge_signature=True)
            assert forged.value.status_code == 403


async def test_metrics_count_calls_and_greeting_latency_without_caller_details() -> None:
    async with local_stack(first_audio_delay=0.05, metrics_port=0) as stack:
        async with stack.caller(from_number="+15551234567") as caller:
            await caller.dial()
            await caller.connect()
            await caller.wait_agent_audio(timeout=5)
        await asyncio.sleep(0.2)
        assert stack.metrics_url is not None
        async with httpx.AsyncClient() as client:
            text = (await client.get(stack.metrics_url)).text
            public = await client.get(f"{stack.relay_url}/metrics")
        assert public.status_code == 404  # metrics live on their own port, never on the public listener
        assert 'voice_agent_calls_total{end_reason="caller_hung_up"} 1.0' in text
        assert "voice_agent_greeting_seconds_count 1.0" in text
        assert "voice_agent_live_calls 0.0" in text
        assert "5551234567" not in text and caller.call_sid not in text


async def test_a_full_relay_refuses_new_calls_so_twilio_uses_the_fallback() -> None:
    async with local_stack(first_audio_delay=0.05, settings_overrides={"max_live_calls": 1}) as stack:
        async with stack.caller() as first:
            await first.dial()
            await first.connect()
            await first.wait_agent_audio(timeout=5)
            with pytest.raises(WebhookRejected) as refused:
                await stack.caller().dial()
            assert refused.value.status_code == 503
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"{stack.relay_url}/readyz")
            assert ready.status_code == 503 and ready.json()["at_capacity"] is True
        assert len(stack.sim.sessions) == 1
