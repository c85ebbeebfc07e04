"""A simulated phone caller that treats the relay the way Twilio does (PROTOCOLS.md section B).

``dial()`` posts a signed voice webhook and reads the ``<Connect><Stream>`` TwiML; ``connect()`` opens the
Media Stream with a signed upgrade, sends ``connected`` and ``start``, then streams 20 ms mu-law frames in
real time (queued speech, else silence). Audio the relay sends back goes through ``TwilioPlayer``, a model
of Twilio's outbound buffer: played at 8 bytes/ms, marks echoed when their audio has played, ``clear``
flushes. Everything observed is kept for assertions and can be written as a stereo WAV.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from bisect import bisect_right
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from app.sim.twilio_media import (
    CallerSpeech,
    PlayedAudio,
    ProtocolViolation,
    SpokenLine,
    TwilioPlayer,
    parse_outbound_frame,
)
from app.sim.twilio_webhook import (
    CallerError,
    WebhookRejected,
    incoming_call_form,
    new_sid,
    parse_connect_stream,
    rehome_stream_url,
    twilio_signature,
)
from app.sim.wav import mulaw_to_int16, place_segments, write_stereo_wav

__all__ = [
    "CallerError",
    "PlayedAudio",
    "SimulatedCaller",
    "SpokenLine",
    "StreamRejected",
    "WebhookRejected",
]

FRAME_SECONDS = 0.020
PLAYBACK_TICK_SECONDS = 0.010
DTMF_DIGITS = frozenset("0123456789*#ABCD")
VOICE_THRESHOLD = 300  # |int16| below this is synthesiser silence/dither, not voice


class StreamRejected(CallerError):
    """The Media Stream WebSocket upgrade was refused with an HTTP status."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"stream upgrade refused with HTTP {status_code}")
        self.status_code = status_code


def _arrival_time(arrival: tuple[float, int]) -> float:
    return arrival[0]


class SimulatedCaller:
    """A Twilio caller for one call; use as ``async with`` so every task is cancelled at the end."""

    def __init__(
        self,
        *,
        relay_url: str,
        public_base_url: str,
        auth_token: str,
        account_sid: str | None = None,
        from_number: str = "+14155550100",
        to_number: str = "+14155550199",
        caller_state: str | None = "CA",
        extra_params: dict[str, str] | None = None,
        voice: str = "en-us",
    ) -> None:
        self.relay_url = relay_url.rstrip("/")
        self.public_base_url = public_base_url.rstrip("/")
        self.auth_token = auth_token
        self.account_sid = account_sid or new_sid("AC")
        self.from_number = from_number
        self.to_number = to_number
        self.caller_state = caller_state
        self.extra_params = dict(extra_params or {})
        self.voice = voice  # the espeak-ng voice say_text speaks in
        self.call_sid = new_sid("CA")
        self.stream_sid = new_sid("MZ")
        self.twiml = ""
        self.stream_url = ""
        self.parameters: dict[str, str] = {}
        # Timeline, all on time.perf_counter().
        self.connected_at: float | None = None
        self.start_sent_at: float | None = None
        self.media_origin: float | None = None  # stream time 0 of the inbound frames
        self.media_sent_at: list[float] = []
        self.sent_audio = bytearray()
        self.frames_received = 0
        self.first_media_at: float | None = None
        self.media_arrivals: list[tuple[float, int]] = []
        self.received_media_bytes = 0
        self.marks_echoed: list[str] = []
        self.clears: list[float] = []
        self.violations: list[str] = []
        self.closed_by_relay = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.player = TwilioPlayer()
        self._ws: ClientConnection | None = None
        self._sequence = 0
        self._send_lock = asyncio.Lock()
        self.speech = CallerSpeech()
        self._speech_drained = asyncio.Event()
        self._speech_drained.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._hung_up = False

    # ---- webhook -------------------------------------------------------------------------------

    def webhook_params(self) -> dict[str, str]:
        """The form Twilio posts for this call."""
        return incoming_call_form(
            call_sid=self.call_sid,
            account_sid=self.account_sid,
            from_number=self.from_number,
            to_number=self.to_number,
            caller_state=self.caller_state,
            extra=self.extra_params,
        )

    async def dial(self, *, sign: bool = True, forge_signature: bool = False) -> str:
        """POST the signed voice webhook, parse ``<Connect><Stream>`` and return the raw TwiML."""
        params = self.webhook_params()
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if sign:
            headers["X-Twilio-Signature"] = twilio_signature(
                self.auth_token, self._webhook_url(), params, forge=forge_signature
            )
        url = f"{self.relay_url}/twilio/incoming"
        try:
            async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
                response = await http.post(url, data=params, headers=headers)
        except httpx.TransportError as exc:
            raise CallerError(f"could not reach the relay at {url}: {exc!r}") from exc
        if not response.is_success:
            raise WebhookRejected(response.status_code, response.text)
        self.twiml = response.text
        self.stream_url, self.parameters = parse_connect_stream(response.text, self._webhook_url())
        return self.twiml

    def _webhook_url(self) -> str:
        return f"{self.public_base_url}/twilio/incoming"

    # ---- media stream ----------------------------------------------------------------------------

    def socket_url(self) -> str:
        """The TwiML stream URL re-homed onto the relay's real address (ws:// for http://)."""
        return rehome_stream_url(self.stream_url, self.relay_url)

    async def connect(
        self,
        *,
        send_start: bool = True,
        stream_media: bool = True,
        sign: bool = True,
        forge_signature: bool = False,
    ) -> None:
        """Open the stream (signed over the TwiML wss URL), send ``connected`` (+ ``start``), start tasks.

        Raises ``StreamRejected`` if the upgrade is refused; a close after the upgrade shows up as
        ``closed_by_relay``/``close_code`` instead.
        """
        if not self.stream_url:
            raise CallerError("dial() first: there is no stream URL")
        headers = {}
        if sign:
            headers["X-Twilio-Signature"] = twilio_signature(
                self.auth_token, self.stream_url, {}, forge=forge_signature
            )
        try:
            self._ws = await connect(
                self.socket_url(),
                additional_headers=headers,
                compression=None,
                proxy=None,
                max_size=4 * 1024 * 1024,
                user_agent_header="Twilio.TmeWs/1.0",
            )
        except InvalidStatus as exc:
            raise StreamRejected(exc.response.status_code) from exc
        except (OSError, WebSocketException) as exc:
            raise CallerError(f"could not open the stream at {self.socket_url()}: {exc!r}") from exc
        self.connected_at = time.perf_counter()
        self._tasks.append(asyncio.create_task(self._read_frames(), name="caller-read"))
        self._tasks.append(asyncio.create_task(self._play_out(), name="caller-playback"))
        with contextlib.suppress(ConnectionClosed):
            await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"}, sequence=False)
            if send_start:
                await self.send_start()
        if stream_media:
            self._tasks.append(asyncio.create_task(self._send_media(), name="caller-media"))

    async def send_start(self) -> None:
        """Send the ``start`` frame (done by ``connect`` unless ``send_start=False``)."""
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": dict(self.parameters),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self._send({"event": "start", "streamSid": self.stream_sid, "start": start})
        self.start_sent_at = time.perf_counter()

    async def _send(self, frame: dict[str, Any], *, sequence: bool = True) -> None:
        if self._ws is None:
            raise CallerError("not connected")
        async with self._send_lock:  # keeps sequenceNumbers in wire order
            if sequence:
                self._sequence += 1
                frame = {"event": frame["event"], "sequenceNumber": str(self._sequence)} | frame
            await self._ws.send(json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        """Send any text frame as is (robustness tests)."""
        if self._ws is None:
            raise CallerError("not connected")
        async with self._send_lock:
            await self._ws.send(text)

    # ---- caller audio ------------------------------------------------------------------------------

    def say(self, mulaw: bytes) -> None:
        """Queue 8 kHz mu-law speech; it goes out in the next media frames at real-time pace."""
        if mulaw:
            self.speech.queue(mulaw)
            self._speech_drained.clear()

    async def say_text(self, text: str, voice: str | None = None) -> None:
        """Synthesise ``text`` offline (espeak-ng, in ``voice``) and queue it.

        The synthesiser's trailing silence is cut so that ``wait_said`` returns when the voice stops,
        which is where a caller starts counting the agent's reply time.
        """
        from app.sim.speech import synthesize_mulaw

        mulaw = await asyncio.to_thread(synthesize_mulaw, text, voice=voice or self.voice)
        voiced = np.flatnonzero(np.abs(mulaw_to_int16(mulaw).astype(np.int32)) > VOICE_THRESHOLD)
        self.say(mulaw[: int(voiced[-1]) + 1] if len(voiced) else mulaw)

    async def wait_said(self, timeout: float | None = None) -> float:
        """Wait until all queued speech has been sent; returns when its last frame went out."""
        async with asyncio.timeout(timeout):
            await self._speech_drained.wait()
        return self.speech.spoken[-1].ended_at if self.speech.spoken else time.perf_counter()

    async def _send_media(self) -> None:
        origin = self.media_origin = self.start_sent_at or self.connected_at or time.perf_counter()
        frame_index = 0
        try:
            while True:
                # Frame i covers [i*20, i*20+20) ms of the stream and leaves once that audio exists;
                # absolute deadlines keep the pace from drifting.
                deadline = origin + (frame_index + 1) * FRAME_SECONDS
                await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
                now = time.perf_counter()
                chunk = self.speech.next_frame(now)
                if self.speech.idle:
                    self._speech_drained.set()
                media = {
                    "track": "inbound",
                    "chunk": str(frame_index + 1),
                    "timestamp": str(frame_index * 20),
                    "payload": base64.b64encode(chunk).decode("ascii"),
                }
                await self._send({"event": "media", "streamSid": self.stream_sid, "media": media})
                self.sent_audio += chunk
                self.media_sent_at.append(now)
                frame_index += 1
        except ConnectionClosed:
            return

    async def press(self, digit: str) -> None:
        """Send a DTMF key press as Twilio does on bidirectional streams."""
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        dtmf = {"track": "inbound_track", "digit": digit}
        await self._send({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": dtmf})

    # ---- relay audio -------------------------------------------------------------------------------

    @property
    def spoken(self) -> list[SpokenLine]:
        """Caller utterances already sent, with the times their first and last frames went out."""
        return self.speech.spoken

    @property
    def played(self) -> list[PlayedAudio]:
        """Audio the caller actually heard, with the perf_counter time each piece started playing."""
        return self.player.played

    def heard_audio(self, since: float | None = None) -> bytes:
        """What the caller heard (from perf_counter time ``since`` if given), concatenated, gaps removed."""
        pieces = self.player.played
        if since is None:
            return b"".join(piece.audio for piece in pieces)
        skip = [max(0, round((since - piece.started_at) * 8000)) for piece in pieces]
        return b"".join(piece.audio[cut:] for piece, cut in zip(pieces, skip, strict=True))

    async def _read_frames(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                await self._on_frame(message)
        except ConnectionClosed:
            pass
        finally:
            if not self._hung_up:
                self.close_code = self._ws.close_code
                self.close_reason = self._ws.close_reason or ""
                self.closed_by_relay.set()
                for task in self._tasks:
                    if task is not asyncio.current_task():
                        task.cancel()

    async def _on_frame(self, message: str | bytes) -> None:
        now = time.perf_counter()
        self.frames_received += 1
        try:
            frame = parse_outbound_frame(
                message, stream_sid=self.stream_sid, started=bool(self.start_sent_at)
            )
        except ProtocolViolation as violation:
            self.violations.append(str(violation))
            return
        if frame.event == "media":
            self.first_media_at = self.first_media_at or now
            self.media_arrivals.append((now, len(frame.audio)))
            self.received_media_bytes += len(frame.audio)
            self.player.enqueue_audio(frame.audio, now)
        elif frame.event == "mark":
            await self._echo_marks(self.player.enqueue_mark(frame.mark_name))
        else:
            self.clears.append(now)
            await self._echo_marks(self.player.clear(now))

    async def _echo_marks(self, names: list[str]) -> None:
        for name in names:
            self.marks_echoed.append(name)
            mark = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
            with contextlib.suppress(ConnectionClosed):
                await self._send(mark)

    async def _play_out(self) -> None:
        next_tick = time.perf_counter()
        while True:
            next_tick += PLAYBACK_TICK_SECONDS
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
            await self._echo_marks(self.player.advance(time.perf_counter()))

    async def wait_agent_audio(self, timeout: float = 10.0, *, since: float | None = None) -> float:
        """Wait for relay audio (arriving after ``since`` if given); returns its arrival time."""
        async with asyncio.timeout(timeout):
            while True:
                first_after = (
                    0 if since is None else bisect_right(self.media_arrivals, since, key=_arrival_time)
                )
                if first_after < len(self.media_arrivals):
                    return self.media_arrivals[first_after][0]
                if self.closed_by_relay.is_set():
                    raise CallerError("the relay closed the stream before sending audio")
                await asyncio.sleep(0.005)

    async def wait_agent_silent(self, quiet: float = 0.8, timeout: float = 10.0) -> None:
        """Wait until nothing has been queued or played for ``quiet`` seconds; raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                last_arrival = self.media_arrivals[-1][0] if self.media_arrivals else 0.0
                idle_since = max(last_arrival, self.player.play_clock, self.connected_at or 0.0)
                if self.closed_by_relay.is_set():
                    return
                if self.player.idle and time.perf_counter() - idle_since >= quiet:
                    return
                await asyncio.sleep(0.01)

    # ---- ending ----------------------------------------------------------------------------------

    async def wait_closed_by_relay(self, timeout: float = 5.0) -> int | None:
        """Wait until the relay closes the stream; returns the close code."""
        async with asyncio.timeout(timeout):
            await self.closed_by_relay.wait()
        return self.close_code

    async def hang_up(self) -> None:
        """Send ``stop`` and close the socket (what Twilio does when the caller hangs up); idempotent."""
        if self._hung_up:
            return
        self._hung_up = True
        for task in self._tasks:
            if task.get_name() == "caller-media":
                task.cancel()
        if self._ws is not None and not self.closed_by_relay.is_set():
            stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
            with contextlib.suppress(ConnectionClosed):
                await self._send({"event": "stop", "streamSid": self.stream_sid, "stop": stop})
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def __aenter__(self) -> SimulatedCaller:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.hang_up()

    # ---- recording -------------------------------------------------------------------------------

    def write_wav(self, path: str | Path) -> None:
        """Stereo 8 kHz WAV on one time axis from stream time 0: left = caller's audio, right = heard."""
        origin = self.media_origin or self.start_sent_at or self.connected_at or 0.0
        left = place_segments([(0, bytes(self.sent_audio))])
        right = place_segments(
            (round((piece.started_at - origin) * 8000), piece.audio) for piece in self.player.played
        )
        write_stereo_wav(path, left, right)
