"""The simulated Twilio caller against a tiny relay that checks it the way our relay will."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket
from starlette.websockets import WebSocketDisconnect
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse
from websockets.exceptions import ConnectionClosed

from app.sim.call_command import add_call_arguments, run_call
from app.sim.twilio_caller import CallerError, SimulatedCaller, StreamRejected, WebhookRejected
from app.sim.twilio_media import CallerSpeech, ProtocolViolation, TwilioPlayer, parse_outbound_frame
from app.sim.wav import read_wav

AUTH_TOKEN = "test-auth-token"
PUBLIC_BASE = "https://voice.example.com"
STREAM_URL = "wss://voice.example.com/twilio/stream"


@dataclass
class StubRelay:
    """Just enough relay: checks signatures, answers TwiML, and lets the test drive the socket."""

    base_url: str = ""
    twiml: str | None = None
    reject_upgrade: bool = False
    close_after_accept: int | None = None
    agent: bool = False  # greet on start, answer each caller utterance once it ends
    webhook_forms: list[dict[str, str]] = field(default_factory=list)
    upgrade_signature_ok: list[bool] = field(default_factory=list)
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    socket: WebSocket | None = None
    frame_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [frame for _, frame in self.frames if frame.get("event") == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 3.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.events(name)) < count:
                self.frame_arrived.clear()
                await self.frame_arrived.wait()
        return self.events(name)

    async def send(self, frame: dict[str, Any] | str) -> None:
        assert self.socket is not None
        await self.socket.send_text(frame if isinstance(frame, str) else json.dumps(frame))


def build_relay_app(relay: StubRelay) -> FastAPI:
    app = FastAPI()
    validator = RequestValidator(AUTH_TOKEN)

    @app.post("/twilio/incoming")
    async def incoming(request: Request) -> Response:
        form = await request.form()
        signature = request.headers.get("x-twilio-signature", "")
        if not validator.validate(f"{PUBLIC_BASE}/twilio/incoming", form, signature):
            return Response("bad signature", status_code=403)
        relay.webhook_forms.append({key: str(value) for key, value in form.items()})
        if relay.twiml is not None:
            return Response(relay.twiml, media_type="application/xml")
        response = VoiceResponse()
        connect = Connect()
        stream = connect.stream(url=STREAM_URL)
        stream.parameter(name="call_token", value="tok-123")
        stream.parameter(name="CallSid", value=str(form["CallSid"]))
        response.append(connect)
        return Response(str(response), media_type="application/xml")

    @app.websocket("/twilio/stream")
    async def stream(websocket: WebSocket) -> None:
        signature_ok = validator.validate(STREAM_URL, {}, websocket.headers.get("x-twilio-signature", ""))
        relay.upgrade_signature_ok.append(signature_ok)
        if relay.reject_upgrade and not signature_ok:
            await websocket.close(code=1008)  # before accept: the upgrade is refused with HTTP 403
            return
        await websocket.accept()
        if relay.close_after_accept is not None:
            await websocket.close(code=relay.close_after_accept)
            return
        relay.socket = websocket
        relay.connected.set()
        silent_frames = 0  # the stub's "VAD": a reply once 300 ms of silence follow speech
        try:
            while True:
                frame = json.loads(await websocket.receive_text())
                relay.frames.append((time.perf_counter(), frame))
                relay.frame_arrived.set()
                if not relay.agent:
                    continue
                if frame["event"] in ("start", "dtmf"):
                    await agent_says(websocket, frame["streamSid"], frame["event"], 2400)
                if frame["event"] == "media":
                    silent = set(base64.b64decode(frame["media"]["payload"])) == {0xFF}
                    silent_frames = silent_frames + 1 if silent else 0
                    if silent_frames == 15 and frame["media"]["chunk"] != "15":
                        await agent_says(websocket, frame["streamSid"], "reply", 1600)
        except WebSocketDisconnect:
            relay.disconnected.set()

    return app


async def agent_says(websocket: WebSocket, stream_sid: str, name: str, size: int) -> None:
    payload = base64.b64encode(b"\x80" * size).decode()
    await websocket.send_text(
        json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})
    )
    await websocket.send_text(json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}))


@pytest.fixture
async def relay() -> AsyncIterator[StubRelay]:
    relay = StubRelay()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    relay.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(build_relay_app(relay), log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started)
    yield relay
    server.should_exit = True
    await serving


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("condition not met")


def make_caller(relay: StubRelay, **kwargs: Any) -> SimulatedCaller:
    return SimulatedCaller(
        relay_url=relay.base_url, public_base_url=PUBLIC_BASE, auth_token=AUTH_TOKEN, **kwargs
    )


async def connected_caller(relay: StubRelay, **connect_kwargs: Any) -> SimulatedCaller:
    caller = make_caller(relay)
    await caller.dial()
    await caller.connect(**connect_kwargs)
    await asyncio.wait_for(relay.connected.wait(), 3)
    return caller


def media(caller: SimulatedCaller, audio: bytes) -> dict[str, Any]:
    payload = base64.b64encode(audio).decode()
    return {"event": "media", "streamSid": caller.stream_sid, "media": {"payload": payload}}


def mark(caller: SimulatedCaller, name: str) -> dict[str, Any]:
    return {"event": "mark", "streamSid": caller.stream_sid, "mark": {"name": name}}


# ---- webhook -----------------------------------------------------------------------------------


async def test_dial_posts_a_signed_twilio_form_and_reads_the_stream(relay: StubRelay) -> None:
    caller = make_caller(relay, extra_params={"CallerName": "Test"})
    twiml = await caller.dial()

    form = relay.webhook_forms[0]
    assert re.fullmatch(r"CA[0-9a-f]{32}", form["CallSid"]) and form["CallSid"] == caller.call_sid
    assert re.fullmatch(r"AC[0-9a-f]{32}", form["AccountSid"])
    assert form["CallStatus"] == "ringing" and form["Direction"] == "inbound"
    assert form["ApiVersion"] == "2010-04-01" and form["FromState"] == "CA" and form["CallerName"] == "Test"
    assert "<Connect>" in twiml and caller.twiml == twiml
    assert caller.stream_url == STREAM_URL
    assert caller.parameters == {"call_token": "tok-123", "CallSid": caller.call_sid}


async def test_forged_webhook_signature_is_refused(relay: StubRelay) -> None:
    with pytest.raises(WebhookRejected) as refused:
        await make_caller(relay).dial(forge_signature=True)
    assert refused.value.status_code == 403
    with pytest.raises(WebhookRejected):
        await make_caller(relay).dial(sign=False)


async def test_twiml_without_connect_stream_is_an_error(relay: StubRelay) -> None:
    relay.twiml = "<Response><Say>Closed</Say><Hangup/></Response>"
    with pytest.raises(CallerError, match="Connect"):
        await make_caller(relay).dial()


async def test_an_unreachable_relay_is_a_caller_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    relay_url = f"http://127.0.0.1:{port}"
    caller = SimulatedCaller(relay_url=relay_url, public_base_url=PUBLIC_BASE, auth_token="t")
    with pytest.raises(CallerError, match="could not reach"):
        await caller.dial()


# ---- stream setup ------------------------------------------------------------------------------


async def test_upgrade_is_signed_over_the_twiml_wss_url_and_start_has_string_counters(
    relay: StubRelay,
) -> None:
    async with await connected_caller(relay) as caller:
        await relay.wait_for("start")
        assert relay.upgrade_signature_ok == [True]
        first, start = relay.frames[0][1], relay.frames[1][1]
        assert first == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        assert start["sequenceNumber"] == "1" and start["streamSid"] == caller.stream_sid
        assert re.fullmatch(r"MZ[0-9a-f]{32}", caller.stream_sid)
        body = start["start"]
        assert body["callSid"] == caller.call_sid and body["accountSid"] == caller.account_sid
        assert body["tracks"] == ["inbound"]
        assert body["customParameters"] == {"call_token": "tok-123", "CallSid": caller.call_sid}
        assert body["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        assert caller.start_sent_at is not None


async def test_refused_upgrade_raises_with_the_http_status(relay: StubRelay) -> None:
    relay.reject_upgrade = True
    caller = make_caller(relay)
    await caller.dial()
    with pytest.raises(StreamRejected) as refused:
        await caller.connect(forge_signature=True)
    assert refused.value.status_code == 403
    assert relay.upgrade_signature_ok == [False]


async def test_close_after_upgrade_is_reported_with_its_code(relay: StubRelay) -> None:
    relay.close_after_accept = 1008
    async with make_caller(relay) as caller:
        await caller.dial()
        await caller.connect()
        assert await caller.wait_closed_by_relay(3) == 1008


# ---- inbound media -----------------------------------------------------------------------------


async def test_media_flows_at_fifty_frames_a_second_with_speech_then_silence(relay: StubRelay) -> None:
    async with await connected_caller(relay) as caller:
        caller.say(b"\x10" * 400)  # 2.5 frames of "speech"
        said_at = await caller.wait_said(timeout=2)
        await asyncio.sleep(1.0)
        frames = relay.events("media")

    assert said_at == caller.spoken[0].ended_at and caller.spoken[0].size == 400
    arrivals = [at for at, frame in relay.frames if frame["event"] == "media"]
    window = [at for at in arrivals if arrivals[-1] - 1.0 <= at]
    assert 45 <= len(window) <= 55
    assert [f["media"]["chunk"] for f in frames] == [str(i) for i in range(1, len(frames) + 1)]
    assert [f["media"]["timestamp"] for f in frames] == [str(20 * i) for i in range(len(frames))]
    sequence = [int(f["sequenceNumber"]) for f in frames]
    assert sequence == list(range(2, 2 + len(frames)))
    payloads = [base64.b64decode(f["media"]["payload"]) for f in frames]
    assert all(
        len(p) == 160 and f["media"]["track"] == "inbound" for p, f in zip(payloads, frames, strict=True)
    )
    audio = b"".join(payloads)
    assert audio[:400] == b"\x10" * 400 and set(audio[400:]) == {0xFF}


# ---- outbound playback (pure model, exact timing) ------------------------------------------------


def test_player_echoes_a_mark_only_once_its_audio_has_played() -> None:
    player = TwilioPlayer()
    player.enqueue_audio(b"\x00" * 800, now=10.0)  # 100 ms
    assert player.enqueue_mark("m1") == []
    assert player.advance(10.05) == []
    assert sum(len(p.audio) for p in player.played) == 400
    assert player.advance(10.1) == ["m1"]
    assert player.idle and player.played[0].started_at == 10.0


def test_player_resumes_from_arrival_after_a_gap_and_marks_on_empty_queue_echo_at_once() -> None:
    player = TwilioPlayer()
    assert player.enqueue_mark("empty") == ["empty"]
    player.enqueue_audio(b"\x00" * 80, now=1.0)
    player.advance(1.5)
    player.enqueue_audio(b"\x00" * 80, now=2.0)
    player.advance(2.5)
    assert [p.started_at for p in player.played] == [1.0, 2.0]


def test_clear_drops_unplayed_audio_and_returns_pending_marks_in_order() -> None:
    player = TwilioPlayer()
    player.enqueue_audio(b"\x00" * 800, now=0.0)
    player.enqueue_mark("a")
    player.enqueue_audio(b"\x00" * 800, now=0.0)
    player.enqueue_mark("b")
    assert player.clear(0.05) == ["a", "b"]
    assert sum(len(p.audio) for p in player.played) == 400
    assert player.idle and player.queued_audio_bytes == 0
    assert player.advance(1.0) == []


def test_caller_speech_runs_utterances_back_to_back_and_pads_with_silence() -> None:
    speech = CallerSpeech()
    speech.queue(b"\x01" * 100)
    speech.queue(b"\x02" * 100)
    first, second = speech.next_frame(1.0), speech.next_frame(1.02)
    assert first == b"\x01" * 100 + b"\x02" * 60 and second == b"\x02" * 40 + b"\xff" * 120
    assert [(line.started_at, line.ended_at, line.size) for line in speech.spoken] == [
        (1.0, 1.0, 100),
        (1.0, 1.02, 100),
    ]
    assert speech.idle


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "non-JSON"),
        ('{"event": "bogus", "streamSid": "MZx"}', "unexpected event 'bogus'"),
        ('{"event": "media", "media": {"payload": "AAAA"}}', "streamSid None"),
        ('{"event": "media", "streamSid": "MZx", "media": {"payload": "@@@"}}', "not base64"),
        ('{"event": "mark", "streamSid": "MZx", "mark": {}}', "without mark.name"),
    ],
)
def test_frames_twilio_would_reject_are_violations(message: str, reason: str) -> None:
    with pytest.raises(ProtocolViolation, match=re.escape(reason)):
        parse_outbound_frame(message, stream_sid="MZx", started=True)


# ---- outbound playback over the socket ---------------------------------------------------------


async def test_mark_is_echoed_after_its_audio_played_in_real_time(relay: StubRelay) -> None:
    async with await connected_caller(relay) as caller:
        await relay.wait_for("start")
        sent_at = time.perf_counter()
        await relay.send(media(caller, b"\x00" * 3200))  # 400 ms
        await relay.send(mark(caller, "reply-1"))
        echo = (await relay.wait_for("mark"))[0]
        echoed_at = next(at for at, frame in relay.frames if frame is echo)

        assert echo["mark"] == {"name": "reply-1"} and echo["streamSid"] == caller.stream_sid
        assert isinstance(echo["sequenceNumber"], str)
        assert 0.38 <= echoed_at - sent_at <= 0.6
        assert caller.first_media_at is not None and caller.received_media_bytes == 3200
        assert sum(len(p.audio) for p in caller.played) == 3200
        await relay.send(mark(caller, "idle"))  # nothing queued: echoed at once
        await relay.wait_for("mark", count=2, timeout=0.2)
        assert caller.marks_echoed == ["reply-1", "idle"]


async def test_clear_flushes_queued_audio_and_echoes_pending_marks_immediately(relay: StubRelay) -> None:
    async with await connected_caller(relay) as caller:
        await relay.wait_for("start")
        await relay.send(media(caller, b"\x00" * 16000))  # 2 s
        await relay.send(mark(caller, "a"))
        await relay.send(media(caller, b"\x00" * 8000))
        await relay.send(mark(caller, "b"))
        await asyncio.wait_for(caller.wait_agent_audio(), 1)
        await asyncio.sleep(0.3)
        cleared_at = time.perf_counter()
        await relay.send({"event": "clear", "streamSid": caller.stream_sid})
        echoes = await relay.wait_for("mark", count=2, timeout=0.3)
        assert [e["mark"]["name"] for e in echoes] == ["a", "b"]
        assert len(caller.clears) == 1 and caller.clears[0] >= cleared_at
        played = sum(len(p.audio) for p in caller.played)
        assert 1600 <= played <= 4000  # ~0.3 s of the 3 s queued
        await caller.wait_agent_silent(quiet=0.2, timeout=2)
        assert sum(len(p.audio) for p in caller.played) == played


async def test_relay_protocol_mistakes_are_recorded_not_played(relay: StubRelay) -> None:
    async with await connected_caller(relay, send_start=False) as caller:
        await relay.send(media(caller, b"\x00" * 160))
        await eventually(lambda: caller.frames_received == 1)
        await caller.send_start()
        await relay.send("{not json")
        await relay.send({"event": "hello"})
        await relay.send({"event": "media", "streamSid": "MZwrong", "media": {"payload": "AA=="}})
        await relay.send({"event": "clear", "streamSid": caller.stream_sid})
        await eventually(lambda: caller.frames_received >= 5)
        assert caller.violations[0] == "media before start"
        assert caller.violations[1].startswith("non-JSON")
        assert caller.violations[2:] == ["unexpected event 'hello'", "media with streamSid 'MZwrong'"]
        assert caller.received_media_bytes == 0 and len(caller.clears) == 1


# ---- caller actions ----------------------------------------------------------------------------


async def test_press_sends_dtmf_and_hang_up_sends_stop_then_closes(relay: StubRelay) -> None:
    caller = await connected_caller(relay, stream_media=False)
    await caller.press("5")
    await caller.send_raw('{"event": "raw"}')
    await caller.hang_up()
    await asyncio.wait_for(relay.disconnected.wait(), 2)

    dtmf, raw, stop = (frame for _, frame in relay.frames[2:])
    assert dtmf == {
        "event": "dtmf",
        "sequenceNumber": "2",
        "streamSid": caller.stream_sid,
        "dtmf": {"track": "inbound_track", "digit": "5"},
    }
    assert raw == {"event": "raw"}
    assert stop == {
        "event": "stop",
        "sequenceNumber": "3",
        "streamSid": caller.stream_sid,
        "stop": {"accountSid": caller.account_sid, "callSid": caller.call_sid},
    }
    assert not caller.closed_by_relay.is_set()
    with pytest.raises(ValueError):
        await caller.press("x")


async def test_wav_puts_both_sides_on_one_time_axis(relay: StubRelay, tmp_path: Path) -> None:
    async with await connected_caller(relay) as caller:
        await relay.wait_for("start")
        caller.say(b"\x00" * 800)  # loud, 100 ms
        await caller.wait_said(timeout=2)
        await asyncio.sleep(0.1)
        await relay.send(media(caller, b"\x80" * 800))
        await caller.wait_agent_audio(timeout=2)
        await caller.wait_agent_silent(quiet=0.1, timeout=2)
    assert caller.start_sent_at is not None
    heard_from = round((caller.played[0].started_at - caller.start_sent_at) * 8000)
    assert len(caller.heard_audio(since=caller.played[0].started_at + 0.05)) == 800 - 400
    spoken_from = bytes(caller.sent_audio).index(b"\x00")
    # A frame leaves once its 20 ms have been captured, so speech sits one frame before its send time.
    sent_from = round((caller.spoken[0].started_at - caller.start_sent_at) * 8000) - 160
    assert abs(spoken_from - sent_from) <= 80

    caller.write_wav(tmp_path / "call.wav")
    rate, samples = read_wav(tmp_path / "call.wav")

    assert rate == 8000 and samples.shape[1] == 2
    left, right = samples[:, 0], samples[:, 1]
    assert not left[:spoken_from].any() and not left[spoken_from + 800 :].any()
    assert (left[spoken_from : spoken_from + 800] == -32124).all()
    assert not right[:heard_from].any() and (right[heard_from : heard_from + 800] == 32124).all()


async def test_closing_the_caller_twice_is_harmless(relay: StubRelay) -> None:
    caller = await connected_caller(relay)
    await caller.hang_up()
    await caller.hang_up()
    with pytest.raises(ConnectionClosed):
        await caller.press("1")
    await asyncio.wait_for(relay.disconnected.wait(), 2)
    assert len(relay.events("stop")) == 1


# ---- voice-agent call ----------------------------------------------------------------------------


def call_args(relay: StubRelay, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    base = ["--relay", relay.base_url, "--public-base-url", PUBLIC_BASE, "--auth-token", AUTH_TOKEN]
    return parser.parse_args([*base, "--quiet", "0.3", "--reply-timeout", "3", *extra])


async def test_call_command_talks_turn_by_turn_and_reports_timings(
    relay: StubRelay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    relay.agent = True
    args = call_args(
        relay, "--say", "Hello there.", "--press", "1", "--out", str(tmp_path / "call.wav"),
        "--transcript", str(tmp_path / "call.txt"),
    )  # fmt: skip

    assert await run_call(args) == 0

    transcript = (tmp_path / "call.txt").read_text()
    assert 'caller: "Hello there."' in transcript and "caller presses 1" in transcript
    latencies = re.search(
        r"reply latency \(end of caller speech -> agent audio\): (\d+), (\d+) ms", transcript
    )
    assert latencies is not None
    assert 250 <= int(latencies.group(1)) <= 600  # the stub waits 300 ms of silence
    assert int(latencies.group(2)) < 300
    assert "result: ok" in transcript and "result: ok" in capsys.readouterr().out
    assert relay.events("dtmf")[0]["dtmf"]["digit"] == "1" and relay.events("stop")
    rate, samples = read_wav(tmp_path / "call.wav")
    assert rate == 8000 and (samples[:, 1] == 32124).sum() == 2400 + 1600 + 2400


async def test_call_command_fails_when_the_agent_never_speaks(relay: StubRelay) -> None:
    assert await run_call(call_args(relay, "--wait-greeting", "0.3", "--say", "Hello?")) == 1
