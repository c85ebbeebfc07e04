"""Offline text to speech for simulators and benchmarks, via the espeak-ng library in ``espeakng-loader``.

Nothing here touches the network: espeak-ng runs in-process through ctypes and synthesises to memory.
The output is the reference speech the audio benchmarks score against, so resampling uses a
high-quality polyphase filter (``scipy.signal.resample_poly``).

espeak-ng carries pitch-flutter state from one utterance to the next, so the same line spoken twice can
differ by a pitch period or so. The cache hides that within a process, and (with the noise generator
seeded) a process that makes the same calls in the same order gets the same audio, which keeps benchmarks
reproducible.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading

import espeakng_loader
import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from app.lib.audio import mulaw_encode

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 0x1
_END_PAUSE = 0x1000
_EE_OK = 0
_NOISE_SEED = 1

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechError(RuntimeError):
    """espeak-ng could not be initialised or failed to synthesise."""


class _Espeak:
    """One process-wide espeak-ng instance; the C library keeps global state, so callers hold ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = int(self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0))
        if self.sample_rate <= 0:
            raise SpeechError("espeak-ng failed to initialise")
        self._chunks: list[bytes] = []
        # The callback object must outlive every synthesis call, so the instance keeps it.
        self._callback = _SynthCallback(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], sample_count: int, _events: int | None) -> int:
        if wav and sample_count > 0:
            self._chunks.append(ctypes.string_at(wav, sample_count * 2))
        return 0  # 0 = keep synthesising

    def synthesize_native(self, text: str, voice: str) -> npt.NDArray[np.int16]:
        """Speak ``text`` at espeak's native rate; the caller must hold ``lock``."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SpeechError(f"unknown espeak-ng voice {voice!r}")
        encoded = text.encode("utf-8")
        # espeak-ng seeds its noise generator (breathy voices such as +f3) from the clock; a fixed seed
        # makes a run reproducible from one process to the next.
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(_NOISE_SEED))
        self._chunks = []
        status = self._lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _END_PAUSE, None, None
        )
        if status != _EE_OK or self._lib.espeak_Synchronize() != _EE_OK:
            raise SpeechError(f"espeak-ng synthesis failed with status {status}")
        samples = np.frombuffer(b"".join(self._chunks), dtype=np.int16)
        self._chunks = []
        return samples


_engine_lock = threading.Lock()
_engine: _Espeak | None = None


def _get_engine() -> _Espeak:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Espeak()
        return _engine


def _native_take(text: str, voice: str) -> npt.NDArray[np.int16]:
    engine = _get_engine()
    # Holding the engine lock around the cache lookup too means two threads asking for the same new line
    # get one take, not two slightly different ones (see the module docstring on flutter).
    with engine.lock:
        return _cached_native_take(engine, text, voice)


@functools.lru_cache(maxsize=256)
def _cached_native_take(engine: _Espeak, text: str, voice: str) -> npt.NDArray[np.int16]:
    return engine.synthesize_native(text, voice)


@functools.lru_cache(maxsize=256)
def _resampled_take(text: str, voice: str, rate: int) -> npt.NDArray[np.int16]:
    native = _native_take(text, voice)
    native_rate = _get_engine().sample_rate
    if rate == native_rate:
        samples = native.copy()
    else:
        divisor = math.gcd(rate, native_rate)
        resampled = resample_poly(native.astype(np.float64), rate // divisor, native_rate // divisor)
        samples = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    samples.flags.writeable = False
    return samples


def synthesize(text: str, *, rate: int = 24000, voice: str = "en-us") -> npt.NDArray[np.int16]:
    """Speak ``text`` as int16 mono samples at ``rate`` Hz.

    Results are cached per text and voice, and every rate is derived from the same take, so a line at
    8 kHz and at 24 kHz is the same utterance. The returned array is shared and read-only; copy it to
    modify. Safe to call from several threads.
    """
    return _resampled_take(text, voice, rate)


def synthesize_mulaw(text: str, *, voice: str = "en-us") -> bytes:
    """Speak ``text`` as 8 kHz G.711 mu-law bytes, as a simulated Twilio caller sends it (cached)."""
    return _mulaw_take(text, voice)


@functools.lru_cache(maxsize=256)
def _mulaw_take(text: str, voice: str) -> bytes:
    return mulaw_encode(_resampled_take(text, voice, 8000))
