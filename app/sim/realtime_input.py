"""The simulated input audio buffer: session input clock, uncommitted audio, and the server VAD.

The uncommitted audio itself is kept (up to `MAX_BUFFER_SECONDS`, oldest dropped first) so that a brain
that listens can hear the committed turn.
"""

from __future__ import annotations

from typing import Any

from app.sim.realtime_audio import AudioFormat
from app.sim.realtime_vad import SpeechStarted, SpeechStopped, VadSettings, VoiceActivityDetector

__all__ = ["InputAudio"]

MAX_BUFFER_SECONDS = 60


class InputAudio:
    """Counts input audio on the session clock and runs VAD when turn detection is on."""

    def __init__(self) -> None:
        self.format = AudioFormat("audio/pcm")
        self.clock_ms = 0.0  # ms of input audio written this session (the clock of audio_start_ms)
        self.buffered_ms = 0.0  # ms appended since the last commit or clear
        self._audio = bytearray()  # the uncommitted wire audio (its end is the clock now)
        self._turn_detection: dict[str, Any] | None = None
        self._vad: VoiceActivityDetector | None = None

    def configure(self, input_config: dict[str, Any]) -> None:
        """Apply the session's `audio.input` (format and turn_detection); restarts VAD on a change."""
        audio_format = AudioFormat.from_config(input_config.get("format"))
        turn_detection = input_config.get("turn_detection")
        if (
            audio_format == self.format
            and turn_detection == self._turn_detection
            and (self._vad is not None or turn_detection is None)
        ):
            return
        self.format = audio_format
        self._turn_detection = dict(turn_detection) if turn_detection else None
        self._vad = (
            VoiceActivityDetector(
                audio_format, VadSettings.from_turn_detection(turn_detection), int(self.clock_ms)
            )
            if turn_detection
            else None
        )

    @property
    def speaking(self) -> bool:
        """True while VAD is inside a speech segment."""
        return self._vad is not None and self._vad.speaking

    def append(self, data: bytes) -> list[SpeechStarted | SpeechStopped]:
        """Add wire bytes; return VAD transitions (none when turn detection is off)."""
        appended_ms = len(data) / self.format.bytes_per_ms
        self.clock_ms += appended_ms
        self.buffered_ms += appended_ms
        self._audio += data
        overflow = len(self._audio) - MAX_BUFFER_SECONDS * 1000 * self.format.bytes_per_ms
        if overflow > 0:
            del self._audio[: overflow + overflow % self.format.bytes_per_sample]
        return self._vad.feed(data) if self._vad is not None else []

    def take(self) -> float:
        """Commit: empty the buffer and return how many ms it held."""
        return self.take_audio()[0]

    def take_audio(self, since_ms: float | None = None) -> tuple[float, bytes]:
        """Commit: empty the buffer; return how many ms it held and its audio (from `since_ms` on the
        session clock, when given: a VAD turn's start)."""
        held_ms, audio = self.buffered_ms, bytes(self._audio)
        if since_ms is not None:
            keep_ms = max(0.0, self.clock_ms - since_ms)
            keep = int(keep_ms * self.format.bytes_per_ms)
            audio = audio[len(audio) - min(len(audio), keep - keep % self.format.bytes_per_sample) :]
        self.clear()
        return held_ms, audio

    def clear(self) -> None:
        """Drop uncommitted audio and any speech segment in progress."""
        self.buffered_ms = 0.0
        self._audio.clear()
        if self._vad is not None:
            self._vad.reset()
