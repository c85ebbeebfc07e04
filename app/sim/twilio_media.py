"""Media logic of a simulated Twilio stream, with no I/O (PROTOCOLS.md B1, traps 6, 7, 15).

Driven by the simulated caller. ``CallerSpeech`` cuts queued caller speech into 20 ms inbound frames,
padding with silence. ``parse_outbound_frame`` accepts only what Twilio
accepts from the app (``media``/``mark``/``clear`` with the stream's sid, after ``start``).
``TwilioPlayer`` models the outbound buffer: audio is queued as it arrives and played at 8 bytes per ms
from when it could first start; a mark is due once every byte queued before it has played; ``clear``
drops what has not played yet and returns the pending marks at once, in order.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

MULAW_BYTES_PER_SECOND = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law, the size of Twilio's inbound frames
MULAW_SILENCE = 0xFF


@dataclass(frozen=True)
class SpokenLine:
    """One queued utterance: perf_counter times its first and last frame went out, and its size."""

    started_at: float
    ended_at: float
    size: int


class CallerSpeech:
    """Queued caller speech, handed out one inbound frame at a time (silence when nothing is queued)."""

    def __init__(self) -> None:
        self.spoken: list[SpokenLine] = []
        self._lines: deque[bytearray] = deque()
        self._line_started_at = 0.0
        self._line_size = 0

    @property
    def idle(self) -> bool:
        """All queued speech has been handed out."""
        return not self._lines

    def queue(self, mulaw: bytes) -> None:
        """Queue an utterance after the ones already waiting."""
        if mulaw:
            self._lines.append(bytearray(mulaw))

    def next_frame(self, sent_at: float) -> bytes:
        """The next 160 bytes to send at ``sent_at``; utterances run on back to back."""
        frame = bytearray()
        while self._lines and len(frame) < FRAME_BYTES:
            line = self._lines[0]
            if self._line_size == 0:
                self._line_started_at, self._line_size = sent_at, len(line)
            taken = line[: FRAME_BYTES - len(frame)]
            frame += taken
            del line[: len(taken)]
            if not line:
                self._lines.popleft()
                self.spoken.append(SpokenLine(self._line_started_at, sent_at, self._line_size))
                self._line_size = 0
        return bytes(frame.ljust(FRAME_BYTES, bytes([MULAW_SILENCE])))


@dataclass(frozen=True)
class PlayedAudio:
    """mu-law bytes the caller heard; ``started_at`` is the perf_counter time the first byte played."""

    started_at: float
    audio: bytes


class ProtocolViolation(ValueError):
    """A frame Twilio would not accept; the message says why."""


@dataclass(frozen=True)
class OutboundFrame:
    """An accepted app -> Twilio frame: ``media`` (decoded audio), ``mark`` (its name) or ``clear``."""

    event: str
    audio: bytes = b""
    mark_name: str = ""


def parse_outbound_frame(message: str | bytes, *, stream_sid: str, started: bool) -> OutboundFrame:
    """Check a frame from the relay the way Twilio would; raises ``ProtocolViolation``."""
    if isinstance(message, bytes):
        raise ProtocolViolation(f"binary frame of {len(message)} bytes")
    try:
        frame: Any = json.loads(message)
    except ValueError:
        raise ProtocolViolation(f"non-JSON frame {message[:80]!r}") from None
    if not isinstance(frame, dict):
        raise ProtocolViolation(f"frame is not a JSON object: {message[:80]!r}")
    event = frame.get("event")
    if event not in ("media", "mark", "clear"):
        raise ProtocolViolation(f"unexpected event {event!r}")
    if not started:
        raise ProtocolViolation(f"{event} before start")
    if frame.get("streamSid") != stream_sid:
        raise ProtocolViolation(f"{event} with streamSid {frame.get('streamSid')!r}")
    body = frame.get(event)
    if event == "media":
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(payload, str):
            raise ProtocolViolation("media without media.payload")
        try:
            return OutboundFrame("media", audio=base64.b64decode(payload, validate=True))
        except binascii.Error:
            raise ProtocolViolation(f"media payload is not base64: {payload[:40]!r}") from None
    if event == "mark":
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise ProtocolViolation("mark without mark.name")
        return OutboundFrame("mark", mark_name=name)
    return OutboundFrame("clear")


class TwilioPlayer:
    """Plays queued mu-law in real time and tells the caller which marks to echo."""

    def __init__(self) -> None:
        self.played: list[PlayedAudio] = []
        # Playback runs continuously from _run_started_at while audio is queued; positions are counted
        # in whole bytes from there so long runs do not accumulate float error.
        self._run_started_at = 0.0
        self._run_bytes_played = 0
        self._queue: deque[bytes | str] = deque()  # bytes = audio, str = mark name
        self._queued_audio_bytes = 0

    @property
    def idle(self) -> bool:
        """Nothing queued: no audio left to play and no mark waiting."""
        return not self._queue

    @property
    def play_clock(self) -> float:
        """When the next queued byte starts playing; the end of the last played byte while idle."""
        return self._run_started_at + self._run_bytes_played / MULAW_BYTES_PER_SECOND

    @property
    def queued_audio_bytes(self) -> int:
        """Audio received but not played yet."""
        return self._queued_audio_bytes

    def enqueue_audio(self, audio: bytes, now: float) -> None:
        """Queue audio that arrived at ``now``; after a pause, playback resumes from ``now``."""
        if not audio:
            return
        if not self._queued_audio_bytes and self.play_clock < now:
            self._run_started_at, self._run_bytes_played = now, 0
        self._queue.append(audio)
        self._queued_audio_bytes += len(audio)

    def enqueue_mark(self, name: str) -> list[str]:
        """Queue a mark; returns it at once (to echo now) when no audio is waiting ahead of it."""
        if not self._queue:
            return [name]
        self._queue.append(name)
        return []

    def advance(self, now: float) -> list[str]:
        """Play everything due up to ``now``; returns the marks whose audio has now fully played."""
        due: list[str] = []
        while self._queue:
            head = self._queue[0]
            if isinstance(head, str):
                due.append(head)
                self._queue.popleft()
                continue
            due_bytes = int((now - self._run_started_at) * MULAW_BYTES_PER_SECOND + 1e-6)
            playable = due_bytes - self._run_bytes_played
            if playable <= 0:
                break
            size = min(len(head), playable)
            self.played.append(PlayedAudio(self.play_clock, head[:size]))
            self._run_bytes_played += size
            self._queued_audio_bytes -= size
            if size < len(head):
                self._queue[0] = head[size:]
                break
            self._queue.popleft()
        return due

    def clear(self, now: float) -> list[str]:
        """Flush unplayed audio at ``now``; returns marks already due plus every pending mark, in order."""
        due = self.advance(now)
        due.extend(item for item in self._queue if isinstance(item, str))
        self._queue.clear()
        self._queued_audio_bytes = 0
        return due
