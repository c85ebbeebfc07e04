from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.lib.audio import mulaw_decode
from app.sim.speech import SpeechError, synthesize, synthesize_mulaw

SENTENCE = "Thanks for calling, how can I help you today?"


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_synthesize_gives_audible_speech_of_plausible_length() -> None:
    samples = synthesize(SENTENCE)
    assert samples.dtype == np.int16
    seconds = samples.size / 24000
    assert 1.5 < seconds < 6.0  # ~9 words at a normal speaking rate
    assert _rms(samples) > 500


def test_synthesize_rate_scales_length() -> None:
    at_24k = synthesize(SENTENCE)
    at_8k = synthesize(SENTENCE, rate=8000)
    assert abs(at_24k.size - 3 * at_8k.size) <= 3  # both rates come from the same take


def test_synthesize_mulaw_is_8khz_speech() -> None:
    mulaw = synthesize_mulaw(SENTENCE)
    decoded = mulaw_decode(mulaw)
    assert len(mulaw) == synthesize(SENTENCE, rate=8000).size
    assert _rms(decoded) > 500


def test_cached_result_is_read_only_and_shared() -> None:
    first = synthesize("Cache me.")
    assert synthesize("Cache me.", voice="en-us") is first
    with pytest.raises(ValueError):
        first[0] = 1


def test_concurrent_calls_each_get_their_own_whole_utterance() -> None:
    texts = ["Goodbye for now."] * 3 + ["Please hold while I transfer you to someone who can help."] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda text: synthesize(text, rate=16000), texts))
    # One take per line even when threads race for it; interleaved or lost chunks would change lengths.
    assert all(np.array_equal(parallel[0], audio) for audio in parallel[:3])
    assert all(np.array_equal(parallel[3], audio) for audio in parallel[3:])
    assert parallel[3].size > 2 * parallel[0].size
    assert np.array_equal(parallel[0], synthesize("Goodbye for now.", rate=16000))


def test_unknown_voice_is_an_error() -> None:
    with pytest.raises(SpeechError):
        synthesize("Hello.", voice="no-such-voice")
