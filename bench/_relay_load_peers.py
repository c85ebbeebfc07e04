"""Lean load peers for the steady-state bench: a Realtime model and Twilio callers that cost little CPU.

The full simulators validate every event against the SDK's pydantic models and run a VAD on every frame;
at 100 calls x 50 frames/s each way they need several cores, so the load generator, not the relay, would be
measured. These peers speak the same wire protocols with prebuilt frames, over bench._relay_ws, driven by
loop timers rather than tasks:

- `LoadModel` answers `session.update`, and streams one endless audio reply per `response.create`, a 20 ms
  delta (160 mu-law bytes) every 20 ms in real time. Each event shape is validated once against the SDK's
  models (app.sim.realtime_validation) when the model starts, so the shapes are the GA protocol's.
- `LoadCaller` dials through the real webhook (signed, via `SimulatedCaller.dial`), opens the signed
  stream, sends `connected` + `start`, then a 20 ms media frame every 20 ms, and echoes each mark once
  the audio queued before it has played (Twilio's rule), checked every frame tick.

Every audio frame carries a tag in its first 6 bytes (`pack_tag`): inbound frames (call, frame index),
outbound deltas (session, delta index). The relay passes pcmu payloads through untouched, so the far end
reads the tag and the one-way latency is (receive stamp - send stamp), both on this process's clock.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import struct
import time
from collections import deque
from typing import Any

from app.sim.realtime_session_config import default_session, merge_session_update, new_id
from app.sim.realtime_validation import server_event_problems
from app.sim.twilio_caller import SimulatedCaller
from app.sim.twilio_webhook import twilio_signature
from bench._relay_ws import WsEndpoint, connect_ws, serve_ws

FRAME_SECONDS = 0.020
FRAME_BYTES = 160
_TAG = struct.Struct(">HI")  # 6 bytes = exactly 8 base64 characters, so the tag is the payload's prefix
_APPEND_PREFIX = '{"type":"input_audio_buffer.append"'
_AUDIO_KEY = '"audio":"'


@functools.cache
def _filler_b64(frames: int) -> str:
    """Base64 mu-law silence filling `frames` x 20 ms after the tag (the tag's 6 bytes keep alignment)."""
    return base64.b64encode(b"\xff" * (frames * FRAME_BYTES - _TAG.size)).decode()


def pack_tag(stream: int, index: int, frames: int = 1) -> str:
    """The base64 payload of `frames` x 20 ms tagged (stream, index): tag bytes, then mu-law silence."""
    return base64.b64encode(_TAG.pack(stream, index)).decode() + _filler_b64(frames)


def read_tag(payload_b64: str) -> tuple[int, int]:
    """(stream, index) from a tagged payload."""
    stream, index = _TAG.unpack(base64.b64decode(payload_b64[:8]))
    return int(stream), int(index)


class LoadModel:
    """A Realtime endpoint for load: endless real-time audio replies, stamped both ways."""

    def __init__(self, *, first_audio_delay: float = 0.3, delta_frames: int = 1) -> None:
        self.first_audio_delay = first_audio_delay
        self.delta_frames = delta_frames  # 20 ms frames per audio delta (the real service's vary)
        self.streaming = True  # False: replies keep their clock but send no audio (caller->model only)
        self.port = 0
        self.inbound_received: dict[tuple[int, int], float] = {}  # (call, frame) -> bytes arrived at
        self.outbound_sent: dict[tuple[int, int], float] = {}  # (session, delta) -> sent at
        self.sessions: list[_ModelSession] = []
        self._server: asyncio.Server | None = None
        _check_shapes()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        self._server = await serve_ws(self._on_open)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for session in self.sessions:
            session.stop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _on_open(self, endpoint: WsEndpoint, path: str, headers: dict[str, str]) -> None:
        session = _ModelSession(self, endpoint, len(self.sessions))
        self.sessions.append(session)
        endpoint.on_text = session.on_text
        endpoint.send_text(json.dumps(_event("session.created", session=session.config)))

    def on_append(self, text: str, arrived: float) -> None:
        start = text.index(_AUDIO_KEY) + len(_AUDIO_KEY)
        self.inbound_received[read_tag(text[start : start + 8])] = arrived


class _ModelSession:
    """One model connection: `session.update` is answered, each `response.create` starts an endless reply."""

    def __init__(self, model: LoadModel, endpoint: WsEndpoint, index: int) -> None:
        self.model = model
        self.endpoint = endpoint
        self.index = index
        self.config = default_session("gpt-realtime-mini")
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._head = ""
        self._sequence = 0
        self._started = 0.0

    def on_text(self, text: str, arrived: float) -> None:
        if text.startswith(_APPEND_PREFIX):
            self.model.on_append(text, arrived)
            return
        event = json.loads(text)
        kind = event.get("type")
        if kind == "session.update":
            self.config = merge_session_update(self.config, event["session"], voice_locked=False)
            self.endpoint.send_text(json.dumps(_event("session.updated", session=self.config)))
        elif kind == "response.create":
            self._start_reply()

    def _start_reply(self) -> None:
        self.stop()
        response_id, item_id = new_id("resp"), new_id("item")
        for event in _reply_opening(response_id, item_id):
            self.endpoint.send_text(json.dumps(event))
        ids = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        self._head = json.dumps({"type": "response.output_audio.delta", **ids})[:-1] + ',"event_id":"event_'
        self._sequence = 0
        self._started = self._loop.time() + self.model.first_audio_delay
        self._timer = self._loop.call_at(self._started, self._send_delta)

    def _send_delta(self) -> None:
        if self.endpoint.closed.is_set():
            return
        if self.model.streaming:
            index, sequence = self.index, self._sequence
            payload = pack_tag(index, sequence, self.model.delta_frames)
            text = f'{self._head}{index}_{sequence}","delta":"{payload}"}}'
            self.model.outbound_sent[(index, sequence)] = time.perf_counter()
            self.endpoint.send_text(text)
        self._sequence += 1
        # Absolute deadlines: the reply stays real time however late one wake-up was.
        interval = self.model.delta_frames * FRAME_SECONDS
        self._timer = self._loop.call_at(self._started + self._sequence * interval, self._send_delta)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _check_shapes() -> None:
    """Every event shape the load model sends must be a valid GA server event (checked once)."""
    session = default_session("gpt-realtime-mini")
    response_id, item_id = new_id("resp"), new_id("item")
    delta = _event(
        "response.output_audio.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta=pack_tag(0, 0),
    )
    samples = [
        _event("session.created", session=session),
        _event("session.updated", session=session),
        *_reply_opening(response_id, item_id),
        delta,
    ]
    for sample in samples:
        problems = server_event_problems(sample)
        if problems:
            raise AssertionError(f"load model would send an invalid {sample['type']}: {problems}")


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": new_id("event"), **fields}


def _reply_opening(response_id: str, item_id: str) -> list[dict[str, Any]]:
    """response.created .. content_part.added: what precedes the first audio delta of a reply."""
    response = {
        "object": "realtime.response",
        "id": response_id,
        "status": "in_progress",
        "status_details": None,
        "output": [],
        "conversation_id": new_id("conv"),
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "usage": None,
        "metadata": None,
    }
    item = {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    ids = {"response_id": response_id, "item_id": item_id, "output_index": 0}
    return [
        _event("response.created", response=response),
        _event("response.output_item.added", response_id=response_id, output_index=0, item=item),
        _event("conversation.item.added", previous_item_id=None, item=item),
        _event(
            "response.content_part.added", **ids, content_index=0, part={"type": "audio", "transcript": ""}
        ),
    ]


class LoadCaller:
    """One Twilio call for load: signed setup through the real webhook, then real-time media and marks."""

    def __init__(self, index: int, setup: SimulatedCaller) -> None:
        self.index = index
        self.setup = setup
        self.sent_at: list[float] = []  # frame index -> perf_counter send time
        self.arrivals: list[tuple[float, int, int]] = []  # (arrived at, session, delta) of agent media
        self.marks_echoed = 0
        self.talking = True  # False: no media frames (Twilio always sends them; this prices the other way)
        self._ws: WsEndpoint | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._origin = 0.0
        self._ticks = 0
        self._sequence = 0
        self._play_end = 0.0  # when the audio queued at "Twilio" will have played
        self._marks_due: deque[tuple[float, str]] = deque()

    async def start(self) -> None:
        """Dial (signed webhook), open the signed stream, send connected + start, then stream media."""
        setup = self.setup
        await setup.dial()
        signature = twilio_signature(setup.auth_token, setup.stream_url, {})
        headers = {"X-Twilio-Signature": signature, "User-Agent": "Twilio.TmeWs/1.0"}
        self._ws = await connect_ws(setup.socket_url(), headers)
        self._ws.on_text = self._on_text
        self._ws.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "accountSid": setup.account_sid,
            "streamSid": setup.stream_sid,
            "callSid": setup.call_sid,
            "tracks": ["inbound"],
            "customParameters": dict(setup.parameters),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        self._send_frame("start", start)
        self._origin = self._loop.time()
        self._timer = self._loop.call_at(self._origin + FRAME_SECONDS, self._send_media)

    def _send_frame(self, event: str, body: dict[str, Any]) -> None:
        assert self._ws is not None
        self._sequence += 1
        frame = {"event": event, "sequenceNumber": str(self._sequence), "streamSid": self.setup.stream_sid}
        self._ws.send_text(json.dumps(frame | {event: body}))

    def _send_media(self) -> None:
        """Frame i covers [20 i, 20 i + 20) ms of the call and leaves once that audio exists."""
        assert self._ws is not None
        if self._ws.closed.is_set():
            return
        now = time.perf_counter()
        if self.talking:
            frame_index = len(self.sent_at)
            self._sequence += 1
            text = (
                f'{{"event":"media","sequenceNumber":"{self._sequence}","streamSid":"{self.setup.stream_sid}",'
                f'"media":{{"track":"inbound","chunk":"{frame_index + 1}","timestamp":"{frame_index * 20}",'
                f'"payload":"{pack_tag(self.index, frame_index)}"}}}}'
            )
            self.sent_at.append(now)
            self._ws.send_text(text)
        while self._marks_due and self._marks_due[0][0] <= now:
            _, name = self._marks_due.popleft()
            self._send_frame("mark", {"name": name})
            self.marks_echoed += 1
        self._ticks += 1
        self._timer = self._loop.call_at(self._origin + (self._ticks + 1) * FRAME_SECONDS, self._send_media)

    def _on_text(self, text: str, arrived: float) -> None:
        frame = json.loads(text)
        event = frame.get("event")
        if event == "media":
            payload = frame["media"]["payload"]
            session, delta = read_tag(payload)
            self.arrivals.append((arrived, session, delta))
            self._play_end = max(self._play_end, arrived) + len(base64.b64decode(payload)) / 8000
        elif event == "mark":
            self._marks_due.append((self._play_end, frame["mark"]["name"]))
        elif event == "clear":
            # Twilio drops unplayed audio and returns every pending mark at once.
            self._play_end = arrived
            self._marks_due = deque((arrived, name) for _, name in self._marks_due)

    async def hang_up(self) -> None:
        """Send `stop` and close the stream, as Twilio does when the caller hangs up."""
        if self._timer is not None:
            self._timer.cancel()
        if self._ws is not None and not self._ws.closed.is_set():
            self._send_frame("stop", {"accountSid": self.setup.account_sid, "callSid": self.setup.call_sid})
            self._ws.close()
            await self._ws.closed.wait()
