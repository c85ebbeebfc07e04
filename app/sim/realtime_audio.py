"""Audio for the simulated Realtime server: G.711 codecs, session formats and a synthetic voice.

Written independently of app.lib.audio on purpose: the simulator judges the relay's audio handling, so it
must not share the relay's codec (a bug there would cancel out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

__all__ = [
    "OUTPUT_RATE",
    "AudioFormat",
    "alaw_decode",
    "alaw_encode",
    "mulaw_decode",
    "mulaw_encode",
    "synthetic_speech",
]

Int16Array = npt.NDArray[np.int16]

OUTPUT_RATE = 24_000
"""Sample rate of the tts callable's output (and of audio/pcm)."""

_MULAW_BIAS = 0x84
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def mulaw_encode(samples: Int16Array) -> bytes:
    """Encode int16 samples to G.711 mu-law bytes (the reference 14-bit algorithm telephony uses)."""
    values = samples.astype(np.int32) >> 2
    mask = np.where(values < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(values), 8159) + (_MULAW_BIAS >> 2)
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, magnitude, side="left")
    coded = (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    coded = np.where(segment >= 8, 0x7F, coded)
    return bytes((coded ^ mask).astype(np.uint8))


@cache
def _mulaw_table() -> Int16Array:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def mulaw_decode(data: bytes) -> Int16Array:
    """Decode G.711 mu-law bytes to int16 samples."""
    table: Int16Array = _mulaw_table()[np.frombuffer(data, dtype=np.uint8)]
    return table


_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def alaw_encode(samples: Int16Array) -> bytes:
    """Encode int16 samples to G.711 A-law bytes."""
    values = samples.astype(np.int32) >> 3
    mask = np.where(values >= 0, 0xD5, 0x55)
    values = np.where(values >= 0, values, -values - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, values, side="left")
    shift = np.where(segment < 2, 1, segment)
    coded = (np.minimum(segment, 7) << 4) | ((values >> shift) & 0x0F)
    coded = np.where(segment >= 8, 0x7F, coded)
    return bytes((coded ^ mask).astype(np.uint8))


@cache
def _alaw_table() -> Int16Array:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    mantissa = (codes & 0x0F) << 4
    segment = (codes & 0x70) >> 4
    magnitude = np.where(segment == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(segment - 1, 0))
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


def alaw_decode(data: bytes) -> Int16Array:
    """Decode G.711 A-law bytes to int16 samples."""
    table: Int16Array = _alaw_table()[np.frombuffer(data, dtype=np.uint8)]
    return table


@dataclass(frozen=True)
class AudioFormat:
    """One of the three GA audio formats, with the arithmetic the simulator needs."""

    kind: str  # "audio/pcm" | "audio/pcmu" | "audio/pcma"

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> AudioFormat:
        """Build from a session format object such as {"type": "audio/pcmu"}."""
        kind = (config or {}).get("type", "audio/pcm")
        return cls(kind if kind in ("audio/pcmu", "audio/pcma") else "audio/pcm")

    @property
    def sample_rate(self) -> int:
        """Samples per second on the wire."""
        return OUTPUT_RATE if self.kind == "audio/pcm" else 8_000

    @property
    def bytes_per_sample(self) -> int:
        """Bytes per sample on the wire (pcm16 little-endian or one G.711 byte)."""
        return 2 if self.kind == "audio/pcm" else 1

    @property
    def bytes_per_ms(self) -> int:
        """Bytes per millisecond of audio: 48 for pcm16@24k, 8 for G.711."""
        return self.sample_rate * self.bytes_per_sample // 1000

    def decode(self, data: bytes) -> Int16Array:
        """Decode whole samples of wire bytes (pcm16 callers must keep odd bytes for the next chunk)."""
        if self.kind == "audio/pcmu":
            return mulaw_decode(data)
        if self.kind == "audio/pcma":
            return alaw_decode(data)
        return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.int16)

    def encode_from_24k(self, samples: Int16Array) -> bytes:
        """Encode 24 kHz int16 audio (what tts returns) into this wire format."""
        if self.kind == "audio/pcm":
            return samples.astype("<i2").tobytes()
        narrow = resample_poly(samples.astype(np.float64), 1, 3)
        narrow_int16 = np.clip(np.round(narrow), -32768, 32767).astype(np.int16)
        return mulaw_encode(narrow_int16) if self.kind == "audio/pcmu" else alaw_encode(narrow_int16)


SECONDS_PER_CHARACTER = 0.065


def synthetic_speech(text: str, rate: int = OUTPUT_RATE) -> Int16Array:
    """A deterministic, speech-like signal for `text`: voiced harmonics under a syllable envelope.

    About 65 ms per character, never silent, peaks near -12 dBFS; the same text always gives the same
    samples. Cheap enough for unit tests; the demo injects a real TTS instead.
    """
    seconds = max(0.3, SECONDS_PER_CHARACTER * len(text))
    return synthetic_speech_seconds(seconds, seed_text=text, rate=rate)


def synthetic_speech_seconds(seconds: float, *, seed_text: str = "", rate: int = OUTPUT_RATE) -> Int16Array:
    """`seconds` of the synthetic voice; `seed_text` varies the pitch contour deterministically."""
    count = max(1, int(round(seconds * rate)))
    time = np.arange(count, dtype=np.float64) / rate
    seed = sum(ord(character) for character in seed_text) % 97
    syllable_seconds = 0.26
    # A slow pitch contour around 120 Hz makes the harmonics wander like a voice instead of a tone.
    pitch = 120.0 + 18.0 * np.sin(2 * math.pi * (0.7 + seed / 200.0) * time + seed)
    phase = 2 * math.pi * np.cumsum(pitch) / rate
    voiced = np.zeros(count, dtype=np.float64)
    for harmonic in range(1, 13):
        # Boost harmonics near 500 Hz and 1500 Hz, rough first and second formants.
        frequency = 120.0 * harmonic
        formant_gain = 1.0 + 1.5 * math.exp(-(((frequency - 500) / 250) ** 2))
        formant_gain += 0.8 * math.exp(-(((frequency - 1500) / 400) ** 2))
        voiced += formant_gain / harmonic * np.sin(harmonic * phase)
    syllable_position = (time / syllable_seconds) % 1.0
    envelope = 0.12 + 0.88 * np.sin(math.pi * syllable_position) ** 2
    edge = min(count, int(0.02 * rate))
    ramp = np.linspace(0.0, 1.0, edge) if edge else np.ones(0)
    envelope[:edge] *= ramp
    envelope[count - edge :] *= ramp[::-1]
    signal = voiced * envelope
    peak = float(np.max(np.abs(signal))) or 1.0
    scaled = signal / peak * (0.25 * 32767)
    return scaled.astype(np.int16)
