"""WAV writing and mu-law decoding for the simulators.

The simulators keep their own G.711 mu-law table instead of importing ``app.lib.audio`` so that a bug in
the relay's audio code cannot hide itself by being present on both sides of a test.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
MULAW_SILENCE = 0xFF

Int16Array = npt.NDArray[np.int16]


def _build_mulaw_table() -> Int16Array:
    """The 256 G.711 mu-law codes decoded to linear 16-bit samples (ITU-T G.711, bias 0x84)."""
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(inverted & 0x80, -magnitude, magnitude).astype(np.int16)


_MULAW_TO_LINEAR = _build_mulaw_table()


def mulaw_to_int16(mulaw: bytes) -> Int16Array:
    """Decode raw 8 kHz mu-law bytes to int16 samples (one sample per byte)."""
    return _MULAW_TO_LINEAR[np.frombuffer(mulaw, dtype=np.uint8)]


def place_segments(segments: Iterable[tuple[int, bytes]], length: int = 0) -> Int16Array:
    """Lay mu-law segments on one time axis: each ``(start_sample, mulaw)`` is decoded at its offset.

    Segments starting before sample 0 are clipped; the track grows to fit the last segment.
    """
    decoded = [(start, mulaw_to_int16(audio)) for start, audio in segments]
    end = max([length, *(start + len(samples) for start, samples in decoded)])
    track = np.zeros(end, dtype=np.int16)
    for start, samples in decoded:
        if start < 0:
            samples = samples[-start:]
            start = 0
        track[start : start + len(samples)] = samples
    return track


def write_mono_wav(path: str | Path, samples: Int16Array, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono 16-bit PCM WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.astype("<i2").tobytes())


def write_stereo_wav(
    path: str | Path, left: Int16Array, right: Int16Array, sample_rate: int = SAMPLE_RATE
) -> None:
    """Write a stereo 16-bit PCM WAV file; the shorter channel is padded with silence."""
    frames = max(len(left), len(right))
    interleaved = np.zeros((frames, 2), dtype="<i2")
    interleaved[: len(left), 0] = left
    interleaved[: len(right), 1] = right
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(interleaved.tobytes())


def read_wav(path: str | Path) -> tuple[int, Int16Array]:
    """Read a 16-bit PCM WAV file: ``(sample_rate, samples)`` with shape (frames, channels)."""
    with wave.open(str(path), "rb") as source:
        channels = source.getnchannels()
        if source.getsampwidth() != 2:
            raise ValueError("only 16-bit PCM WAV files are supported")
        raw = source.readframes(source.getnframes())
        rate = source.getframerate()
    return rate, np.frombuffer(raw, dtype="<i2").astype(np.int16).reshape(-1, channels)
