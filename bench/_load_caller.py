"""One simulated Twilio call for the load bench, cheap enough that one process drives ~100 of them.

Behaves as Twilio does: signed voice webhook and signed stream upgrade (relay; the Pipecat peer gets the
stream directly, as it has no webhook step of its own here), `connected` + `start`, then a 20 ms mu-law
media frame every 20 ms on an absolute clock, and each `mark` echoed once the audio queued before it has
played (8 bytes per ms, dropped on `clear`). The caller's audio is silence with a marked tone burst every
200 ms (bench._load_tones), and now and then half a second of speech, which the simulator's VAD hears:
over the agent that is a barge-in. The agent's audio is fed to a burst detector as it arrives.

Everything stamped with perf_counter (CLOCK_MONOTONIC: one clock for every process on the machine).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Protocol

import httpx

from app.sim.realtime_audio import mulaw_encode, synthetic_speech_seconds
from app.sim.twilio_webhook import (
    incoming_call_form,
    new_sid,
    parse_connect_stream,
    rehome_stream_url,
    twilio_signature,
)
from bench._load_tones import FREQUENCIES, BurstDetector, mulaw_burst_frame
from bench._relay_ws import WsEndpoint, connect_ws

FRAME_SECONDS = 0.020
FRAME_BYTES = 160
BURST_EVERY_FRAMES = 10  # 200 ms
SPEECH_FRAMES = 25  # 0.5 s of speech per utterance
QUIET_AFTER_SPEECH_FRAMES = 5  # no burst right after speech (the detector needs quiet before an onset)
UTTERANCE_GAPS = (3.0, 6.0)  # s between utterances, alternating: one lands mid-reply, one after it
BARGE_IN_WINDOW = 2.0  # a `clear` this soon after an utterance began is its reaction
SETUP_TIMEOUT = 15.0
LATE_TICK_SECONDS = 0.005  # a caller frame sent this late is the load generator falling behind
PUBLIC_BASE_URL = "https://relay.example.test"


class Lock(Protocol):
    def acquire(self, block: bool = ...) -> bool: ...
    def release(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """Where calls go: the relay (webhook + signed stream) or the Pipecat peer (stream only)."""

    kind: str  # "relay" | "pipecat"
    url: str  # http://127.0.0.1:PORT
    auth_token: str = ""


@dataclass
class CallRecord:
    """What one call saw; picklable, merged by the parent."""

    index: int
    probe: bool
    session: int | None = None  # the model session's number (bench._load_model)
    start_sent: float = 0.0
    greeting_ms: float | None = None  # `start` sent -> first agent media frame arrived
    sent: list[tuple[float, int]] = field(default_factory=list)  # caller bursts: (sent at, code)
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # agent bursts: (arrived at, code)
    utterances: list[float] = field(default_factory=list)  # speech onset sent at
    barge_ins: list[tuple[float, float]] = field(default_factory=list)  # (onset sent, clear arrived)
    marks_echoed: int = 0
    late_ticks: list[tuple[float, float]] = field(default_factory=list)  # (when, ms late) of late frames
    error: str | None = None
    closed_early: bool = False


_http: httpx.AsyncClient | None = None


def http_client() -> httpx.AsyncClient:
    """One HTTP client per worker: a client per dial costs a TLS context each, tens of ms on a busy box."""
    global _http
    if _http is None:
        _http = httpx.AsyncClient(timeout=SETUP_TIMEOUT, trust_env=False)
    return _http


async def close_http_client() -> None:
    global _http
    if _http is not None:
        await _http.aclose()
        _http = None


@cache
def _silence_b64() -> str:
    return base64.b64encode(b"\xff" * FRAME_BYTES).decode()


@cache
def _burst_b64(code: int) -> str:
    return base64.b64encode(mulaw_burst_frame(code, FRAME_BYTES)).decode()


@cache
def _speech_b64() -> tuple[str, ...]:
    wire = mulaw_encode(synthetic_speech_seconds(SPEECH_FRAMES * FRAME_SECONDS, seed_text="yes", rate=8000))
    return tuple(
        base64.b64encode(wire[start : start + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff")).decode()
        for start in range(0, SPEECH_FRAMES * FRAME_BYTES, FRAME_BYTES)
    )


class LoadCall:
    """One call: `setup` (under the shared dial lock), then media both ways until `hang_up`."""

    def __init__(self, index: int, target: Target, *, probe: bool = False) -> None:
        self.target = target
        self.record = CallRecord(index, probe)
        self.call_sid, self.stream_sid, self.account_sid = new_sid("CA"), new_sid("MZ"), new_sid("AC")
        self._ws: WsEndpoint | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._origin = 0.0
        self._frame = 0
        self._sequence = 0
        self._speech_left = 0
        self._quiet_left = 0
        self._next_utterance = 0.0
        self._gap = 0
        self._play_end = 0.0
        self._marks_due: deque[tuple[float, str]] = deque()
        self._detector = BurstDetector(8000)
        self._hung_up = False
        self._loop_origin = 0.0
        self.first_audio = asyncio.Event()

    async def setup(self, lock: Lock, counter: Synchronized[int]) -> None:
        """Dial and open the stream; the dial lock makes the next model session this call's own."""
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                # A process lock: blocking on it would stall this loop's other calls, so poll it.
                while not lock.acquire(False):  # noqa: ASYNC110
                    await asyncio.sleep(0.002)
                try:
                    before = counter.value
                    if self.target.kind == "relay":
                        url, headers, parameters = await self._dial()  # the relay opens the session now
                        await self._open(url, headers, parameters)
                    else:
                        await self._open(f"{self.target.url.replace('http', 'ws', 1)}/ws", {}, {})
                    while counter.value == before:  # noqa: ASYNC110 - a shared-memory counter, no event
                        await asyncio.sleep(0.002)
                    self.record.session = before
                finally:
                    lock.release()
        except Exception as failure:  # a failed call is a figure of the run, not the end of it
            self.record.error = f"setup: {failure!r}"[:200]
            self.close()

    async def _dial(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """The signed voice webhook, as SimulatedCaller.dial posts it, over the worker's one HTTP client."""
        token = self.target.auth_token
        params = incoming_call_form(
            call_sid=self.call_sid,
            account_sid=self.account_sid,
            from_number="+14155550100",  # SimulatedCaller's defaults, as the other benches dial
            to_number="+14155550199",
            caller_state="CA",
        )
        webhook_url = f"{PUBLIC_BASE_URL}/twilio/incoming"
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": twilio_signature(token, webhook_url, params),
        }
        response = await http_client().post(
            f"{self.target.url}/twilio/incoming", data=params, headers=headers
        )
        response.raise_for_status()
        stream_url, parameters = parse_connect_stream(response.text, webhook_url)
        upgrade = {
            "X-Twilio-Signature": twilio_signature(token, stream_url, {}),
            "User-Agent": "Twilio.TmeWs/1.0",
        }
        return rehome_stream_url(stream_url, self.target.url), upgrade, dict(parameters)

    async def _open(self, url: str, headers: dict[str, str], parameters: dict[str, str]) -> None:
        self._ws = await connect_ws(url, headers)
        self._ws.on_text = self._on_text
        self._ws.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        self._send("start", start)
        self.record.start_sent = self._origin = time.perf_counter()
        index = self.record.index
        self._next_utterance = self._origin + 1.0 + (index * 0.377) % 2.0  # staggered across calls
        self._timer = self._loop.call_at(self._loop.time() + FRAME_SECONDS, self._tick)
        self._loop_origin = self._loop.time()

    def _send(self, event: str, body: dict[str, Any]) -> None:
        assert self._ws is not None
        self._sequence += 1
        frame = {"event": event, "sequenceNumber": str(self._sequence), "streamSid": self.stream_sid}
        self._ws.send_text(json.dumps(frame | {event: body}))

    def _tick(self) -> None:
        """Frame i covers [20 i, 20 i + 20) ms of the call and leaves once that audio exists."""
        ws = self._ws
        if ws is None or ws.closed.is_set():
            if not self._hung_up:
                self.record.closed_early = True
            return
        now = time.perf_counter()
        late = self._loop.time() - (self._loop_origin + (self._frame + 1) * FRAME_SECONDS)
        if late > LATE_TICK_SECONDS:
            self.record.late_ticks.append((now, late * 1000))
        payload = self._next_payload(now)
        self._sequence += 1
        ws.send_text(
            f'{{"event":"media","sequenceNumber":"{self._sequence}","streamSid":"{self.stream_sid}",'
            f'"media":{{"track":"inbound","chunk":"{self._frame + 1}","timestamp":"{self._frame * 20}",'
            f'"payload":"{payload}"}}}}'
        )
        self._frame += 1
        while self._marks_due and self._marks_due[0][0] <= now:
            _, name = self._marks_due.popleft()
            self._send("mark", {"name": name})
            self.record.marks_echoed += 1
        self._timer = self._loop.call_at(self._loop_origin + (self._frame + 1) * FRAME_SECONDS, self._tick)

    def _next_payload(self, now: float) -> str:
        if self._speech_left == 0 and now >= self._next_utterance and not self.record.probe:
            self._speech_left = SPEECH_FRAMES
            self.record.utterances.append(now)
            self._next_utterance = now + UTTERANCE_GAPS[self._gap % len(UTTERANCE_GAPS)]
            self._gap += 1
        if self._speech_left:
            payload = _speech_b64()[SPEECH_FRAMES - self._speech_left]
            self._speech_left -= 1
            self._quiet_left = QUIET_AFTER_SPEECH_FRAMES
            return payload
        if self._quiet_left:
            self._quiet_left -= 1
            return _silence_b64()
        if self._frame % BURST_EVERY_FRAMES == 0:
            code = self._frame // BURST_EVERY_FRAMES % len(FREQUENCIES)
            self.record.sent.append((now, code))
            return _burst_b64(code)
        return _silence_b64()

    def _on_text(self, text: str, arrived: float) -> None:
        frame = json.loads(text)
        event = frame.get("event")
        if event == "media":
            data = base64.b64decode(frame["media"]["payload"])
            if self.record.greeting_ms is None:
                self.record.greeting_ms = (arrived - self.record.start_sent) * 1000
                self.first_audio.set()
            before = len(self._detector.found)
            self._detector.feed_mulaw(data, arrived)
            for found in self._detector.found[before:]:
                self.record.arrivals.append((found.arrived, found.code))
            self._play_end = max(self._play_end, arrived) + len(data) / 8000
        elif event == "mark":
            self._marks_due.append((max(self._play_end, arrived), frame["mark"]["name"]))
        elif event == "clear":
            # Twilio drops unplayed audio and returns every pending mark at once.
            self._play_end = arrived
            self._marks_due = deque((arrived, name) for _, name in self._marks_due)
            utterances = self.record.utterances
            onset = utterances[-1] if utterances else None
            reacted = bool(self.record.barge_ins) and self.record.barge_ins[-1][0] == onset
            if onset is not None and arrived - onset < BARGE_IN_WINDOW and not reacted:
                self.record.barge_ins.append((onset, arrived))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._ws is not None:
            self._ws.close()

    async def hang_up(self) -> None:
        """Send `stop` and close the stream, as Twilio does when the caller hangs up."""
        self._hung_up = True
        if self._timer is not None:
            self._timer.cancel()
        ws = self._ws
        if ws is not None and not ws.closed.is_set():
            self._send("stop", {"accountSid": self.account_sid, "callSid": self.call_sid})
            ws.close()
            await ws.closed.wait()
