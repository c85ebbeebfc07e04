"""Energy-based server VAD for the simulated Realtime server.

Mirrors what the relay sees from the real service's server_vad: `speech_started` with `audio_start_ms` on the
input clock (ms of input audio written this session) minus the prefix padding, and `speech_stopped` once
`silence_duration_ms` of quiet has been written, with `audio_end_ms` at that point (it includes the silence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.sim.realtime_audio import AudioFormat

__all__ = ["SpeechStarted", "SpeechStopped", "VadSettings", "VoiceActivityDetector"]

FRAME_MS = 10
MIN_SPEECH_MS = 30  # shorter bursts (clicks) do not start a turn
_SEMANTIC_SILENCE_MS = {"low": 1000, "medium": 500, "auto": 500, "high": 300}


@dataclass(frozen=True)
class VadSettings:
    """The parts of a turn_detection config the detector uses."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 200

    @classmethod
    def from_turn_detection(cls, config: dict[str, Any]) -> VadSettings:
        """Read server_vad fields; semantic_vad maps eagerness to a silence duration."""
        if config.get("type") == "semantic_vad":
            eagerness = str(config.get("eagerness") or "auto")
            return cls(silence_duration_ms=_SEMANTIC_SILENCE_MS.get(eagerness, 500))
        defaults = cls()
        threshold = config.get("threshold")
        prefix_padding_ms = config.get("prefix_padding_ms")
        silence_duration_ms = config.get("silence_duration_ms")
        return cls(
            threshold=defaults.threshold if threshold is None else float(threshold),
            prefix_padding_ms=defaults.prefix_padding_ms
            if prefix_padding_ms is None
            else int(prefix_padding_ms),
            silence_duration_ms=(
                defaults.silence_duration_ms if silence_duration_ms is None else int(silence_duration_ms)
            ),
        )

    @property
    def rms_threshold(self) -> float:
        """int16 RMS above which a frame counts as speech: -60 dBFS at 0.0 up to -20 dBFS at 1.0."""
        level_dbfs = -60.0 + 40.0 * min(max(self.threshold, 0.0), 1.0)
        return float(32768.0 * 10 ** (level_dbfs / 20.0))


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began; `audio_start_ms` already includes the prefix padding."""

    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    """Enough silence followed speech; `audio_end_ms` is the input clock now."""

    audio_start_ms: int
    audio_end_ms: int


class VoiceActivityDetector:
    """Feed wire bytes in any chunking; get speech start/stop transitions on the input clock."""

    def __init__(self, audio_format: AudioFormat, settings: VadSettings, clock_ms: int = 0) -> None:
        self.audio_format = audio_format
        self.settings = settings
        self._frame_samples = audio_format.sample_rate * FRAME_MS // 1000
        self._pending_bytes = b""
        self._pending_samples = np.zeros(0, dtype=np.int16)
        self._clock_ms = clock_ms
        self._voiced_run_ms = 0
        self._silence_run_ms = 0
        self._speaking = False
        self._speech_start_ms = 0

    @property
    def clock_ms(self) -> int:
        """Milliseconds of input audio examined so far this session."""
        return self._clock_ms

    @property
    def speaking(self) -> bool:
        """True between a start and its stop."""
        return self._speaking

    def reset(self) -> None:
        """Forget a turn in progress (buffer cleared or committed by the client); the clock keeps running."""
        self._voiced_run_ms = 0
        self._silence_run_ms = 0
        self._speaking = False

    def feed(self, data: bytes) -> list[SpeechStarted | SpeechStopped]:
        """Consume wire bytes; return the transitions they caused, in order."""
        data = self._pending_bytes + data
        usable = len(data) - len(data) % self.audio_format.bytes_per_sample
        self._pending_bytes = data[usable:]
        samples = np.concatenate([self._pending_samples, self.audio_format.decode(data[:usable])])
        frame_count = len(samples) // self._frame_samples
        self._pending_samples = samples[frame_count * self._frame_samples :]
        transitions: list[SpeechStarted | SpeechStopped] = []
        if frame_count == 0:
            return transitions
        frames = samples[: frame_count * self._frame_samples].astype(np.float64)
        rms = np.sqrt(np.mean(frames.reshape(frame_count, self._frame_samples) ** 2, axis=1))
        for voiced in rms > self.settings.rms_threshold:
            transition = self._step(bool(voiced))
            if transition is not None:
                transitions.append(transition)
        return transitions

    def _step(self, voiced: bool) -> SpeechStarted | SpeechStopped | None:
        frame_start_ms = self._clock_ms
        self._clock_ms += FRAME_MS
        if not self._speaking:
            self._voiced_run_ms = self._voiced_run_ms + FRAME_MS if voiced else 0
            if self._voiced_run_ms < MIN_SPEECH_MS:
                return None
            onset_ms = frame_start_ms + FRAME_MS - self._voiced_run_ms
            self._speaking = True
            self._silence_run_ms = 0
            self._speech_start_ms = max(0, onset_ms - self.settings.prefix_padding_ms)
            return SpeechStarted(self._speech_start_ms)
        self._silence_run_ms = 0 if voiced else self._silence_run_ms + FRAME_MS
        if self._silence_run_ms < max(self.settings.silence_duration_ms, FRAME_MS):
            return None
        self.reset()
        return SpeechStopped(self._speech_start_ms, self._clock_ms)
