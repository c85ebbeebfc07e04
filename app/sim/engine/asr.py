"""Offline speech recognition for the engine: pocketsphinx with the business's own language model.

The acoustic model and pronunciation dictionary ship inside the `pocketsphinx` wheel; nothing is fetched.
Telephone audio (8 kHz, or 24 kHz pcm16) is resampled to the model's 16 kHz, and a little noise is added:
G.711 silence decodes to exact zeros, whose log energy derails the recogniser's feature normalisation
(a clean line turned into "oh really" without it).

The language model is built once per vocabulary (the services the session's tools name) from the corpus
in `vocabulary`; see `lm` for why not the general English model. One decoder serves a process, one
utterance at a time (callers run `recognize` in a worker thread).
"""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from app.sim.engine.lm import arpa_from_sentences, dictionary_for
from app.sim.engine.vocabulary import CONTEXTS, corpus

__all__ = ["ASR_RATE", "Recognizer", "recognizer_for"]

ASR_RATE = 16_000
NBEST = 8  # alternatives the policy may prefer when the best guess means nothing (see DialoguePolicy.choose)
DITHER_RMS = 24.0  # about -63 dBFS: far below speech, enough to keep silence off log(0)
_MODEL_LOCK = threading.Lock()


class Recognizer:
    """One pocketsphinx decoder over a domain language model."""

    def __init__(self, services: Sequence[str], **decoder_options: Any) -> None:
        self._decoders = {context: _decoder(services, context, decoder_options) for context in CONTEXTS}
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(7)

    def recognize(self, samples: npt.NDArray[np.int16], rate: int, expecting: str | None = None) -> str:
        """The best hypothesis of `hypotheses` (see there)."""
        return self.hypotheses(samples, rate, expecting)[0]

    def hypotheses(
        self, samples: npt.NDArray[np.int16], rate: int, expecting: str | None = None, count: int = NBEST
    ) -> list[str]:
        """The words heard in one utterance of int16 mono audio at `rate` Hz, best guess first (lower
        case; a single empty string when nothing was heard).

        `expecting` (a vocabulary context: day, time, slot, name, service) favours the answer to the
        question the agent just asked."""
        if len(samples) == 0:
            return [""]
        audio = samples.astype(np.float64)
        if rate != ASR_RATE:
            divisor = np.gcd(rate, ASR_RATE)
            audio = resample_poly(audio, ASR_RATE // divisor, rate // divisor)
        with self._lock:
            audio = audio + self._rng.normal(0.0, DITHER_RMS, len(audio))
            pcm = np.clip(np.round(audio), -32768, 32767).astype(np.int16).tobytes()
            decoder = self._decoders.get(expecting, self._decoders[None])
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            best = decoder.hyp()
            guesses = [best.hypstr.strip()] if best is not None else [""]
            for index, alternative in enumerate(decoder.nbest()):
                if index >= count:
                    break
                text = str(alternative.hypstr).strip()
                if text and text not in guesses:
                    guesses.append(text)
        return guesses


def _decoder(services: Sequence[str], expecting: str | None, options: dict[str, Any]) -> Any:
    """A pocketsphinx decoder over the domain model for one context."""
    from pocketsphinx import Decoder, get_model_path

    sentences = list(corpus(services, expecting))
    model_dir = Path(get_model_path()) / "en-us"
    full_dictionary = (model_dir / "cmudict-en-us.dict").read_text(encoding="utf-8")
    words = {word for sentence in sentences for word in sentence}
    dictionary, unknown = dictionary_for(words, full_dictionary)
    if unknown:  # a template word without a pronunciation would be unreachable: drop its sentences
        sentences = [sentence for sentence in sentences if not set(sentence) & set(unknown)]
    with tempfile.TemporaryDirectory(prefix="voice-agent-asr-") as folder:
        lm_path = Path(folder) / "domain.lm"
        dict_path = Path(folder) / "domain.dict"
        lm_path.write_text(arpa_from_sentences(sentences), encoding="utf-8")
        dict_path.write_text(dictionary, encoding="utf-8")
        return Decoder(
            hmm=str(model_dir / "en-us"),
            lm=str(lm_path),
            dict=str(dict_path),
            samprate=ASR_RATE,
            logfn="/dev/null",
            **options,
        )


@functools.lru_cache(maxsize=4)
def _cached(services: tuple[str, ...]) -> Recognizer:
    return Recognizer(services)


def recognizer_for(services: Sequence[str]) -> Recognizer:
    """The process's recognizer for this vocabulary, built on first use (a second or two)."""
    with _MODEL_LOCK:
        return _cached(tuple(sorted(services)))
