"""The simulated Realtime server, driven through the openai SDK exactly as the relay connects to it."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from app.sim.realtime_audio import (
    AudioFormat,
    alaw_decode,
    alaw_encode,
    mulaw_decode,
    mulaw_encode,
    synthetic_speech,
)
from app.sim.realtime_server import RealtimeSimulator, SimSession, SimTurn
from app.sim.realtime_validation import ServerEventInvalid, check_server_event, server_event_problems

PCMU = AudioFormat("audio/pcmu")
PCMU_SESSION: dict[str, Any] = {
    "type": "realtime",
    "instructions": "You answer the phone for a dental office.",
    "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "transcription": {"model": "gpt-4o-transcribe"}},
        "output": {"format": {"type": "audio/pcmu"}, "voice": "cedar"},
    },
}
USER_HI: dict[str, Any] = {
    "type": "message",
    "role": "user",
    "content": [{"type": "input_text", "text": "hi"}],
}
DELTA_TYPES = {"response.output_audio.delta", "response.output_audio_transcript.delta"}


def fast_sim(**options: Any) -> RealtimeSimulator:
    settings: dict[str, Any] = {"first_audio_delay": 0.01, "realtime_factor": 200.0, **options}
    return RealtimeSimulator(**settings)


@asynccontextmanager
async def connected(
    sim: RealtimeSimulator, session: dict[str, Any] | None = PCMU_SESSION
) -> AsyncIterator[tuple[AsyncRealtimeConnection, SimSession]]:
    index = len(sim.sessions)
    async with (
        AsyncOpenAI(api_key="sk-sim", base_url=sim.base_url) as client,
        client.realtime.connect(model="gpt-realtime") as conn,
    ):
        sim_session = await sim.wait_for_session(index)
        if session is not None:
            await update_session(conn, session)
        yield conn, sim_session


async def update_session(conn: AsyncRealtimeConnection, session: dict[str, Any]) -> None:
    await conn.session.update(session=cast(Any, session))


async def send_raw(conn: AsyncRealtimeConnection, event: dict[str, Any]) -> None:
    """Send what the SDK's types would refuse (the simulator must catch it)."""
    await conn.send(cast(Any, event))


def of_type(events: list[dict[str, Any]], *event_types: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] in event_types]


def vad_update(**turn_detection: Any) -> dict[str, Any]:
    return {"type": "realtime", "audio": {"input": {"turn_detection": turn_detection}}}


async def events_until(
    conn: AsyncRealtimeConnection, event_type: str, count: int = 1, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Everything the client receives up to the `count`-th `event_type`, as plain dicts."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while count:
            event = (await conn.recv()).to_dict()
            events.append(event)
            count -= event["type"] == event_type
    return events


def caller_speech(text: str, *, lead_ms: int = 500, tail_ms: int = 700) -> bytes:
    """What a phone caller sends: mu-law silence, speech, silence."""
    return b"\xff" * (8 * lead_ms) + PCMU.encode_from_24k(synthetic_speech(text)) + b"\xff" * (8 * tail_ms)


async def send_audio(conn: AsyncRealtimeConnection, audio: bytes, chunk: int = 800) -> None:
    for start in range(0, len(audio), chunk):
        await conn.input_audio_buffer.append(audio=base64.b64encode(audio[start : start + chunk]).decode())


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events if event["type"] not in DELTA_TYPES]


@pytest.fixture
async def sim() -> AsyncIterator[RealtimeSimulator]:
    async with fast_sim() as simulator:
        yield simulator
    assert simulator.validation_errors == []


async def test_session_update_merges_into_the_default_session(sim: RealtimeSimulator) -> None:
    async with connected(sim, session=None) as (conn, session):
        created: dict[str, Any] = (await conn.recv()).to_dict()
        assert created["type"] == "session.created"
        assert created["event_id"].startswith("event_") and created["session"]["id"].startswith("sess_")
        assert created["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200
        await update_session(conn, PCMU_SESSION)
        update = vad_update(type="server_vad", silence_duration_ms=500)
        await update_session(conn, update)
        updated = of_type(await events_until(conn, "session.updated", 2), "session.updated")
    final = updated[-1]["session"]
    assert final["instructions"] == PCMU_SESSION["instructions"]
    assert final["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "cedar", "speed": 1.0}
    vad = final["audio"]["input"]["turn_detection"]
    assert [vad["silence_duration_ms"], vad["prefix_padding_ms"], vad["interrupt_response"]] == [
        500,
        300,
        True,
    ]
    assert session.config == final
    assert session.received_of("session.update")[1]["session"] == update


async def test_session_update_without_type_is_an_error() -> None:
    async with fast_sim() as sim, connected(sim, session=None) as (conn, _):
        await send_raw(conn, {"type": "session.update", "session": {"instructions": "hi"}})
        error = of_type(await events_until(conn, "error"), "error")[0]
    assert error["error"]["code"] == "missing_required_parameter"
    assert error["error"]["message"] == "Missing required parameter: 'session.type'."
    assert len(sim.validation_errors) == 1


async def test_beta_session_keys_are_rejected_and_recorded() -> None:
    async with fast_sim() as sim, connected(sim, session=None) as (conn, session):
        beta = {"type": "realtime", "input_audio_format": "g711_ulaw"}
        await send_raw(conn, {"type": "session.update", "session": beta})
        error = of_type(await events_until(conn, "error"), "error")[0]
        await send_raw(conn, {"type": "response.audio.delta"})
        await events_until(conn, "error")
    assert error["error"]["code"] == "invalid_event"
    assert "session.input_audio_format" in error["error"]["message"]
    assert session.config["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert len(sim.validation_errors) == 2 and "response.audio.delta" in sim.validation_errors[1]


async def test_greeting_streams_in_ga_order_with_usage(sim: RealtimeSimulator) -> None:
    async with connected(sim) as (conn, session):
        await conn.response.create()
        events = await events_until(conn, "response.done")
    assert types(events)[2:] == [
        "response.created", "rate_limits.updated", "response.output_item.added", "conversation.item.added",
        "response.content_part.added", "response.output_audio.done", "response.output_audio_transcript.done",
        "response.content_part.done", "response.output_item.done", "conversation.item.done", "response.done",
    ]  # fmt: skip
    audio = b"".join(base64.b64decode(e["delta"]) for e in of_type(events, "response.output_audio.delta"))
    transcript = "".join(e["delta"] for e in of_type(events, "response.output_audio_transcript.delta"))
    assert transcript == "Thanks for calling. How can I help?"
    expected = PCMU.encode_from_24k(synthetic_speech(transcript))
    assert audio == expected and np.abs(mulaw_decode(audio).astype(np.int32)).max() > 1000
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["id"].startswith("resp_")
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": transcript}]
    assert done["usage"]["output_token_details"]["audio_tokens"] == round(len(audio) / 8 / 50)
    assert done["usage"]["input_token_details"]["text_tokens"] > 0
    assert all(e["event_id"].startswith("event_") for e in session.sent)


async def test_vad_turn_from_caller_speech_gets_the_scripted_reply() -> None:
    script = [SimTurn(hears="what are your hours", say="Nine to five.")]
    async with fast_sim(script=script) as sim, connected(sim) as (conn, session):
        await conn.response.create()
        await events_until(conn, "response.done")
        await send_audio(conn, caller_speech("what are your hours", lead_ms=500))
        events = await events_until(conn, "response.done")
    assert types(events)[:6] == [
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
    ]  # fmt: skip
    started, stopped = events[0], events[1]
    assert 180 <= started["audio_start_ms"] <= 240  # 500 ms of lead silence minus 300 ms prefix padding
    speech_ms = len(synthetic_speech("what are your hours")) / 24
    assert 500 + speech_ms + 150 <= stopped["audio_end_ms"] <= 500 + speech_ms + 260
    assert started["item_id"] == stopped["item_id"] == events[2]["item_id"] == events[3]["item"]["id"]
    assert events[3]["item"]["role"] == "user" and events[5]["transcript"] == "what are your hours"
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Nine to five."
    assert session.received_of("input_audio_buffer.append")
    assert not session.sent_of("input_audio_buffer.append")


async def test_tool_call_round_trip_continues_the_script() -> None:
    script = [
        SimTurn(hears="hours?", say="Let me check.", tool="lookup_hours", arguments={"day": "monday"}),
        SimTurn(say="We are open nine to five."),
    ]
    async with fast_sim(script=script) as sim, connected(sim) as (conn, session):
        await conn.response.create()
        await events_until(conn, "response.done")
        await conn.conversation.item.create(item=cast(Any, USER_HI))
        await conn.response.create()
        events = await events_until(conn, "response.done")
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"open": "9-5"}'}
        await conn.conversation.item.create(item=cast(Any, output))
        await conn.response.create()
        reply = await events_until(conn, "response.done")
    kinds = types(events)
    second_output = kinds.index("response.output_item.added", kinds.index("response.output_item.added") + 1)
    tool_part = kinds[second_output:]
    assert tool_part == [
        "response.output_item.added", "conversation.item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "conversation.item.done",
        "response.done",
    ]  # fmt: skip
    assert call["name"] == "lookup_hours" and json.loads(call["arguments"]) == {"day": "monday"}
    assert call["call_id"].startswith("call_")
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["message", "function_call"]
    assert reply[-1]["response"]["output"][0]["content"][0]["transcript"] == "We are open nine to five."
    assert [(o.name, o.output) for o in sim.tool_outputs] == [("lookup_hours", '{"open": "9-5"}')]


@pytest.mark.parametrize("interrupt", [True, False])
async def test_speech_during_a_response_honours_interrupt_response(interrupt: bool) -> None:
    async with fast_sim(realtime_factor=8.0) as sim, connected(sim) as (conn, session):
        await update_session(conn, vad_update(type="server_vad", interrupt_response=interrupt))
        response_id = await session.speak(2.0)
        await session.wait_for_sent("response.output_audio.delta")
        await send_audio(conn, caller_speech("wait a second", lead_ms=0))
        events = await events_until(conn, "response.done", count=2, timeout=10)
    first_done = next(e for e in events if e["type"] == "response.done")["response"]
    assert first_done["id"] == response_id
    if interrupt:
        assert types(events).index("input_audio_buffer.speech_started") < types(events).index("response.done")
        assert first_done["status"] == "cancelled"
        assert first_done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        assert first_done["output"][0]["status"] == "incomplete"
        assert session.cancelled_responses == [response_id]
    else:
        assert first_done["status"] == "completed" and session.cancelled_responses == []
        deltas = session.sent_of("response.output_audio.delta")
        streamed_ms = sum(len(base64.b64decode(e["delta"])) / 8 for e in deltas)
        assert streamed_ms >= 2000
    assert sim.race_errors == []


async def test_truncate_errors_and_success(sim: RealtimeSimulator) -> None:
    async with connected(sim) as (conn, session):
        await conn.response.create()
        events = await events_until(conn, "response.done")
        item_id = events[-1]["response"]["output"][0]["id"]
        await conn.conversation.item.create(item=cast(Any, USER_HI))
        added = of_type(await events_until(conn, "conversation.item.done"), "conversation.item.done")
        await conn.conversation.item.truncate(item_id=added[0]["item"]["id"], content_index=0, audio_end_ms=0)
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=60_000)
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=800)
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=900)
        replies = of_type(await events_until(conn, "error", count=3), "error", "conversation.item.truncated")
    generated_ms = len(PCMU.encode_from_24k(synthetic_speech("Thanks for calling. How can I help?"))) // 8
    assert replies[0]["error"]["message"] == "Only model output audio messages can be truncated"
    assert replies[0]["error"]["code"] == "unsupported_content_type"
    too_long = f"Audio content of {generated_ms}ms is already shorter than 60000ms"
    assert replies[1]["error"]["message"] == too_long
    assert replies[2]["type"] == "conversation.item.truncated" and replies[2]["audio_end_ms"] == 800
    assert replies[3]["error"]["message"] == "Audio content of 800ms is already shorter than 900ms"
    assert session.truncations == [(item_id, 800)]


async def test_cancel_without_an_active_response_is_an_error(sim: RealtimeSimulator) -> None:
    async with connected(sim) as (conn, session):
        await conn.response.cancel()
        error = of_type(await events_until(conn, "error"), "error")[0]
    assert error["error"]["code"] == "response_cancel_not_active"
    assert error["error"]["message"] == "Cancellation failed: no active response found"


async def test_client_cancel_ends_the_response_as_client_cancelled() -> None:
    async with fast_sim(realtime_factor=4.0) as sim, connected(sim) as (conn, session):
        response_id = await session.speak(3.0)
        await session.wait_for_sent("response.output_audio.delta")
        await conn.response.cancel()
        done = of_type(await events_until(conn, "response.done"), "response.done")[0]
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert session.cancelled_responses == [response_id]


async def test_second_response_create_while_active_is_a_recorded_race() -> None:
    async with fast_sim(first_audio_delay=0.2) as sim, connected(sim) as (conn, session):
        await conn.response.create()
        await conn.response.create()
        await conn.response.create(response={"conversation": "none", "instructions": "Please hold."})
        events = await events_until(conn, "response.done", count=2)
    errors = of_type(events, "error")
    assert [e["error"]["code"] for e in errors] == ["conversation_already_has_active_response"]
    assert len(sim.race_errors) == 1 and "Wait until the response is finished" in sim.race_errors[0]
    out_of_band = [
        e["response"] for e in of_type(events, "response.done") if not e["response"]["conversation_id"]
    ]
    assert out_of_band[0]["output"][0]["content"][0]["transcript"] == "Please hold."
    assert sim.validation_errors == []


async def test_drop_ends_the_sdk_iteration_with_an_error(sim: RealtimeSimulator) -> None:
    async with connected(sim) as (conn, session):
        await events_until(conn, "session.updated")
        await session.drop()
        with pytest.raises(ConnectionClosedError) as closed:
            async with asyncio.timeout(5):
                async for _ in conn:
                    pass
    assert closed.value.rcvd is None  # no close frame: 1006
    assert session.closed.is_set()


async def test_wrong_key_gets_401_and_fail_auth_refuses_everyone() -> None:
    async with fast_sim(api_key="sk-right") as sim:
        async with AsyncOpenAI(api_key="sk-wrong-key", base_url=sim.base_url) as client:
            with pytest.raises(InvalidStatus) as refused:
                async with client.realtime.connect(model="gpt-realtime"):
                    pass
        sim.fail_auth = True
        async with AsyncOpenAI(api_key="sk-right", base_url=sim.base_url) as client:
            with pytest.raises(InvalidStatus):
                async with client.realtime.connect(model="gpt-realtime"):
                    pass
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body)
    assert body["error"]["code"] == "invalid_api_key" and "sk-wrong-key" not in body["error"]["message"]
    assert sim.sessions == [] and sim.rejected_handshakes == [401, 401]


async def test_manual_turns_and_commit_errors_when_turn_detection_is_off(sim: RealtimeSimulator) -> None:
    async with connected(sim) as (conn, session):
        await update_session(conn, {"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await send_audio(conn, b"\xff" * 400)
        await conn.input_audio_buffer.commit()
        await send_audio(conn, caller_speech("hello"))
        await conn.input_audio_buffer.commit()
        events = await events_until(conn, "conversation.item.done")
    errors = of_type(events, "error")
    assert "buffer only has 50.00ms of audio" in errors[0]["error"]["message"]
    assert "input_audio_buffer.speech_started" not in types(events)
    assert "input_audio_buffer.committed" in types(events) and not session.sent_of("response.created")


async def test_reconnect_continues_the_script_and_session_cap_closes_1001() -> None:
    script = [SimTurn(say="One."), SimTurn(say="Two.")]
    async with fast_sim(script=script, session_cap_seconds=0.5) as sim:
        async with connected(sim) as (conn, first):
            await conn.response.create()
            await events_until(conn, "response.done")
            await conn.response.create()
            said = await events_until(conn, "response.done")
            await asyncio.wait_for(first.closed.wait(), 2)
        async with connected(sim) as (conn, second):
            await conn.conversation.item.create(item=cast(Any, USER_HI))
            await conn.response.create()
            again = await events_until(conn, "response.done")
    assert said[-1]["response"]["output"][0]["content"][0]["transcript"] == "One."
    assert again[-1]["response"]["output"][0]["content"][0]["transcript"] == "Two."
    assert first.ws.close_code == 1001 and "maximum duration" in str(first.ws.close_reason)
    assert second is not first and sim.validation_errors == []


def test_g711_codecs_match_the_reference_implementation() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # stdlib reference (removed in 3.13); the simulator must not share the relay's codec

    samples = np.arange(-32768, 32768, dtype=np.int16)
    assert mulaw_encode(samples) == audioop.lin2ulaw(samples.tobytes(), 2)
    assert alaw_encode(samples) == audioop.lin2alaw(samples.tobytes(), 2)
    codes = bytes(range(256))
    assert mulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


def test_an_invalid_server_event_is_a_simulator_bug() -> None:
    delta = {"type": "response.output_audio.delta", "event_id": "event_1", "response_id": "resp_1"}
    with pytest.raises(ServerEventInvalid, match="item_id"):
        check_server_event(delta)
    session = {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_1",
        "expires_at": 1,
        "voice": "x",
    }
    assert server_event_problems({"type": "session.created", "event_id": "e", "session": session}) == [
        "Unknown parameter: 'session.voice'."
    ]


async def test_fault_helpers_drive_the_model(sim: RealtimeSimulator) -> None:
    async with connected(sim) as (conn, session):
        await session.start_tool_call("end_call", {"reason": "done"})
        call = of_type(await events_until(conn, "response.done"), "response.function_call_arguments.done")[0]
        await session.speak(1.5)
        spoken = await events_until(conn, "response.done")
        await conn.response.create(response={"conversation": "none", "instructions": "x" * 121})
        filler = await events_until(conn, "response.done")
        await session.send_error("server_error", "The server had an error.", type="server_error")
        error = of_type(await events_until(conn, "error"), "error")[0]
        await session.close()
        after_close = [event async for event in conn]  # 1001 is a clean close for websockets: no error
        closed = session.ws.close_code, session.ws.close_reason
    assert (call["name"], json.loads(call["arguments"])) == ("end_call", {"reason": "done"})
    assert sim.tool_calls[0].call_id == call["call_id"]
    spoken_audio = sum(
        len(base64.b64decode(e["delta"])) for e in of_type(spoken, "response.output_audio.delta")
    )
    assert spoken_audio == 1.5 * 8000
    assert filler[-1]["response"]["output"][0]["content"][0]["transcript"] == "One moment."
    assert error["error"] == {
        "type": "server_error", "code": "server_error", "message": "The server had an error.", "param": None,
        "event_id": None,
    }  # fmt: skip
    assert after_close == []
    assert closed == (1001, "Your session hit the maximum duration of 60 minutes.")


async def test_reject_with_error_sends_the_error_then_closes() -> None:
    quota = ("insufficient_quota", "You exceeded your current quota.")
    async with fast_sim(reject_with_error=quota) as sim, connected(sim, session=None) as (conn, session):
        events: list[dict[str, Any]] = [event.to_dict() async for event in conn]
    assert types(events) == ["session.created", "error"]
    assert events[1]["error"]["code"] == "insufficient_quota"
    assert session.closed.is_set()


async def test_pcm16_output_and_text_only_responses(sim: RealtimeSimulator) -> None:
    async with connected(sim, session={"type": "realtime"}) as (conn, session):
        await conn.response.create()
        audio = of_type(await events_until(conn, "response.done"), "response.output_audio.delta")
        await conn.response.create(response={"output_modalities": ["text"]})
        text = await events_until(conn, "response.done")
    pcm = b"".join(base64.b64decode(e["delta"]) for e in audio)
    greeting = "Thanks for calling. How can I help?"
    assert pcm == synthetic_speech(greeting).astype("<i2").tobytes()
    assert len(base64.b64decode(audio[0]["delta"])) == 100 * 48  # 100 ms deltas of pcm16 at 24 kHz
    assert (
        "".join(e["delta"] for e in of_type(text, "response.output_text.delta")) == "Is there anything else?"
    )
    assert not of_type(text, "response.output_audio.delta")
    assert text[-1]["response"]["output"][0]["content"][0]["type"] == "output_text"


async def test_idle_timeout_reprompts_after_the_estimated_playback() -> None:
    async with (
        fast_sim(greeting="Hi there.", idle_reply="Are you there?") as sim,
        connected(sim) as (conn, _),
    ):
        await update_session(conn, vad_update(type="server_vad", idle_timeout_ms=200))
        await conn.response.create()
        arrivals: dict[str, float] = {}
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while len(of_type(events, "response.done")) < 2:
                events.append((await conn.recv()).to_dict())
                arrivals.setdefault(events[-1]["type"], time.monotonic())
    timeout = of_type(events, "input_audio_buffer.timeout_triggered")[0]
    assert of_type(events, "input_audio_buffer.committed")[0]["item_id"] == timeout["item_id"]
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Are you there?"
    greeting_seconds = len(synthetic_speech("Hi there.")) / 24000
    waited = arrivals["input_audio_buffer.timeout_triggered"] - arrivals["response.output_audio.delta"]
    assert waited >= greeting_seconds + 0.2 - 0.02
    assert sim.validation_errors == []


async def test_max_output_tokens_cuts_the_response_short(sim: RealtimeSimulator) -> None:
    async with connected(sim) as (conn, session):
        await conn.response.create(response={"max_output_tokens": 20})
        events = await events_until(conn, "response.done")
    done = events[-1]["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert done["usage"]["output_tokens"] <= 20
