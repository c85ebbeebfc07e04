"""Marked tone bursts: how the load bench finds a frame's audio again after a peer re-chunked it.

A burst is 10 ms of a sine at one of four frequencies (its code), with 1 ms raised-cosine edges, in
otherwise digital silence. Re-chunking, resampling (8 <-> 16/24 kHz) and G.711 keep both its onset and its
frequency, so the far end finds the onset by energy (1 ms blocks over a threshold after at least 20 ms of
quiet), and the code by which of the four frequencies carries the most energy. A loud run longer than a
burst (the caller talking, for barge-ins) is not a burst and is skipped.

The detector is fed wire audio as it arrives, in any chunking, with the arrival stamp of each chunk; an
onset is stamped with the arrival of the chunk that completed its first 1 ms block (the chunk that carried
it, whenever chunks are whole milliseconds, as every peer's are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from app.sim.realtime_audio import mulaw_decode, mulaw_encode

Int16Array = npt.NDArray[np.int16]

FREQUENCIES = (600.0, 1000.0, 1400.0, 1800.0)  # the code alphabet; 400 Hz apart, all inside G.711's band
BURST_MS = 10
# About -39 dBFS: under the server VAD's speech level (RMS -40 dBFS at threshold 0.5) even when a burst
# fills a whole 10 ms VAD frame, so bursts never start a turn nor break the silence that ends one.
BURST_PEAK = 370
LOUD_RMS = 40.0  # 1 ms block RMS over this is "sound"; silence here is digital zero
QUIET_BEFORE_MS = 20  # an onset needs this much quiet before it
MIN_BURST_MS, MAX_BURST_MS = 5, 25  # a loud run of another length is not a burst (speech, clicks)
_SILENT_BYTES = b"\xff\x7f"  # mu-law +0 and -0


@cache
def burst(rate: int, code: int) -> Int16Array:
    """One burst of `code` (0..3) at `rate` samples per second."""
    count = rate * BURST_MS // 1000
    time = np.arange(count, dtype=np.float64) / rate
    ramp = max(1, rate // 1000)
    envelope = np.ones(count)
    edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    envelope[:ramp] = edge
    envelope[count - ramp :] = edge[::-1]
    wave = BURST_PEAK * envelope * np.sin(2 * math.pi * FREQUENCIES[code % len(FREQUENCIES)] * time)
    return wave.astype(np.int16)


@cache
def mulaw_burst_frame(code: int, frame_bytes: int = 160) -> bytes:
    """A 20 ms mu-law frame (8 kHz) that starts with a burst of `code` and is silent after it."""
    samples = np.zeros(frame_bytes, dtype=np.int16)
    tone = burst(8000, code)
    samples[: len(tone)] = tone
    return mulaw_encode(samples)


def is_silent_mulaw(data: bytes) -> bool:
    """True when every byte is mu-law zero (the fast path: most frames carry no burst)."""
    return not data.strip(_SILENT_BYTES)


def is_silent_pcm16(data: bytes) -> bool:
    """True when every pcm16 sample is zero."""
    return not data.strip(b"\x00")


@dataclass(frozen=True)
class Detection:
    """A burst found at the far end: when the chunk holding its onset arrived, and its code."""

    arrived: float  # perf_counter
    code: int


class BurstDetector:
    """Streaming onset + code detector for one direction of one call; `feed` in any chunking."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.found: list[Detection] = []
        self._block = max(1, rate // 1000)
        self._leftover = np.zeros(0, dtype=np.int16)
        self._quiet_ms = QUIET_BEFORE_MS  # the stream starts quiet
        self._run: list[Int16Array] | None = None  # samples of the loud run in progress
        self._run_ms = 0
        self._run_arrived = 0.0
        self._skipping = False  # inside a loud run that did not follow enough quiet
        self._probes = _probes(rate)

    def feed_silence(self, samples: int) -> None:
        """Account for `samples` of digital silence without decoding them."""
        if self._run is not None or self._skipping:
            self.feed(np.zeros(samples, dtype=np.int16), 0.0)
            return
        total = len(self._leftover) + samples
        self._quiet_ms += total // self._block
        self._leftover = np.zeros(total % self._block, dtype=np.int16)

    def feed_mulaw(self, data: bytes, arrived: float) -> None:
        """Feed 8 kHz mu-law bytes that arrived at `arrived`."""
        if is_silent_mulaw(data):
            self.feed_silence(len(data))
        else:
            self.feed(mulaw_decode(data), arrived)

    def feed_pcm16(self, data: bytes, arrived: float) -> None:
        """Feed little-endian pcm16 bytes (whole samples) that arrived at `arrived`."""
        if is_silent_pcm16(data):
            self.feed_silence(len(data) // 2)
        else:
            self.feed(np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.int16), arrived)

    def feed(self, samples: Int16Array, arrived: float) -> None:
        """Feed decoded samples; bursts whose run ends here are appended to `found`."""
        joined = np.concatenate([self._leftover, samples]) if len(self._leftover) else samples
        whole = len(joined) // self._block * self._block
        self._leftover = joined[whole:].copy()
        if whole == 0:
            return
        blocks = joined[:whole].reshape(-1, self._block)
        power = np.mean(blocks.astype(np.float64) ** 2, axis=1)
        loud = power > LOUD_RMS * LOUD_RMS
        if not loud.any() and self._run is None and not self._skipping:
            self._quiet_ms += len(blocks)
            return
        for index, is_loud in enumerate(loud.tolist()):
            self._step(bool(is_loud), blocks[index], arrived)

    def _step(self, is_loud: bool, block: Int16Array, arrived: float) -> None:
        if is_loud:
            if self._run is None and not self._skipping:
                if self._quiet_ms >= QUIET_BEFORE_MS:
                    self._run, self._run_ms, self._run_arrived = [], 0, arrived
                else:
                    self._skipping = True
            if self._run is not None:
                self._run.append(block)
                self._run_ms += 1
                if self._run_ms > MAX_BURST_MS:  # speech, not a burst: skip to its end
                    self._run, self._skipping = None, True
            self._quiet_ms = 0
            return
        self._quiet_ms += 1
        if self._run is not None:
            if self._run_ms >= MIN_BURST_MS:
                self.found.append(Detection(self._run_arrived, self._classify(np.concatenate(self._run))))
            self._run = None
        self._skipping = False

    def _classify(self, samples: Int16Array) -> int:
        length = min(len(samples), self._probes.shape[1])
        window = samples[:length].astype(np.float64) * np.hanning(length)
        energy = np.abs(self._probes[:, :length] @ window)
        return int(np.argmax(energy))


@cache
def _probes(rate: int) -> npt.NDArray[np.complex128]:
    """Complex exponentials at the code frequencies, one row each, long enough for a whole burst."""
    count = rate * MAX_BURST_MS // 1000
    time = np.arange(count, dtype=np.float64) / rate
    return np.exp(-2j * math.pi * np.outer(np.array(FREQUENCIES), time))
