"""The load bench's marked tone bursts: found again whatever the chunking or sample rate, never speech."""

from __future__ import annotations

import numpy as np
from scipy.signal import resample_poly

from app.sim.realtime_audio import AudioFormat, mulaw_decode, mulaw_encode, synthetic_speech_seconds
from app.sim.realtime_vad import VadSettings, VoiceActivityDetector
from bench._load_figures import match, quantiles
from bench._load_model import BURST_PERIOD_MS, reply_audio
from bench._load_tones import BurstDetector, mulaw_burst_frame

SILENCE = b"\xff" * 160


def caller_stream(codes: list[int]) -> bytes:
    """Caller audio as the load caller sends it: a burst frame, then nine silent frames, per code."""
    return b"".join(mulaw_burst_frame(code) + SILENCE * 9 for code in codes)


def test_bursts_are_found_with_their_codes_in_any_chunking() -> None:
    codes = [0, 1, 2, 3, 0, 1]
    stream = caller_stream(codes)
    for chunk in (160, 37, 800, 1):
        detector = BurstDetector(8000)
        for number, start in enumerate(range(0, len(stream), chunk)):
            detector.feed_mulaw(stream[start : start + chunk], float(number))
        assert [found.code for found in detector.found] == codes, chunk
        # Each onset carries the arrival stamp of the chunk that completed the burst's first 1 ms block.
        onsets = [index * 1600 for index in range(len(codes))]
        expected = [float((onset + 7) // chunk) for onset in onsets]
        assert [found.arrived for found in detector.found] == expected


def test_bursts_survive_resampling_to_24_khz_pcm16() -> None:
    codes = [3, 2, 1, 0]
    wide = resample_poly(mulaw_decode(caller_stream(codes)).astype(np.float64), 3, 1)
    pcm = np.clip(np.round(wide), -32768, 32767).astype("<i2").tobytes()
    detector = BurstDetector(24_000)
    for start in range(0, len(pcm), 960):  # 20 ms of pcm16 at 24 kHz
        detector.feed_pcm16(pcm[start : start + 960], 0.0)
    assert [found.code for found in detector.found] == codes


def test_speech_is_not_a_burst() -> None:
    speech = mulaw_encode(synthetic_speech_seconds(0.5, seed_text="yes", rate=8000))
    detector = BurstDetector(8000)
    detector.feed_mulaw(SILENCE * 2 + speech + SILENCE * 2 + caller_stream([2]), 0.0)
    assert [found.code for found in detector.found] == [2]


def test_bursts_neither_start_a_turn_nor_break_the_silence_that_ends_one() -> None:
    # The simulator's server VAD (the relay's settings): bursts every 200 ms must read as silence.
    vad = VoiceActivityDetector(AudioFormat("audio/pcmu"), VadSettings(silence_duration_ms=500))
    assert vad.feed(caller_stream([0, 1, 2, 3] * 5)) == []
    speech = mulaw_encode(synthetic_speech_seconds(0.5, seed_text="yes", rate=8000))
    kinds = [type(t).__name__ for t in vad.feed(speech + caller_stream([0, 1, 2, 3] * 2))]
    assert kinds == ["SpeechStarted", "SpeechStopped"]


def test_reply_audio_carries_a_burst_every_period_with_cycling_codes() -> None:
    audio = reply_audio(1.0)
    detector = BurstDetector(24_000)
    detector.feed(audio, 0.0)
    detector.feed(np.zeros(2400, dtype=np.int16), 0.0)  # the last burst's run ends in the silence after
    assert [found.code for found in detector.found] == [0, 1, 2, 3, 0][: 1000 // BURST_PERIOD_MS]


def test_matching_pairs_each_arrival_with_the_latest_same_code_send() -> None:
    sent = [(10.0, 0), (10.2, 1), (10.4, 2), (10.6, 3), (10.8, 0)]
    arrived = [(10.003, 0), (10.204, 1), (10.805, 0), (11.0, 3)]  # code 3's arrival is 400 ms late
    matched = match(sent, arrived, (10.0, 11.0))
    assert [round(value, 3) for value in matched.latencies] == [3.0, 4.0, 5.0, 400.0]
    assert matched.sent == 5
    outside = match(sent, arrived, (10.5, 11.0))  # sends before the window do not count
    assert [round(value, 3) for value in outside.latencies] == [5.0, 400.0]
    found = quantiles([1.0, 2.0, 3.0, 100.0])
    assert found is not None and (found.p50, found.p99, found.max) == (2.0, 100.0, 100.0)
