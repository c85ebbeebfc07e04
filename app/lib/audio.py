"""Telephone audio: G.711 mu-law codec and streaming 8 kHz <-> 24 kHz PCM16 conversion.

Twilio Media Streams carry 8 kHz mu-law; the Realtime model in ``pcm16`` mode takes and produces 24 kHz
16-bit little-endian mono PCM. The converters here sit on the live path of every call, so they never hold
audio back: every input frame yields the matching output frame at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_MULAW_BIAS = 0x84


def _build_decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((codes & 0x0F) << 3) + _MULAW_BIAS) << ((codes & 0x70) >> 4)
    linear = np.where(codes & 0x80, _MULAW_BIAS - magnitude, magnitude - _MULAW_BIAS)
    return linear.astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Follows the ITU-T G.191 reference coder (negatives use the one's complement, 14-bit magnitude),
    # tabulated over every int16 value reinterpreted as uint16, so encoding is one lookup per sample.
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm)
    magnitude = np.minimum((np.where(pcm < 0, ~pcm, pcm) >> 2) + 33, 0x1FFF)
    bit_lengths = np.array([int(v).bit_length() for v in range(128)], dtype=np.int32)
    segment = bit_lengths[magnitude >> 6] + 1
    code = ((8 - segment) << 4) | (0x0F - ((magnitude >> segment) & 0x0F))
    code = np.where(pcm >= 0, code | 0x80, code)
    table: npt.NDArray[np.uint8] = code.astype(np.uint8)
    return table


_DECODE_TABLE = _build_decode_table()
_ENCODE_TABLE = _build_encode_table()


def mulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """Decode G.711 mu-law bytes to int16 samples (one sample per byte)."""
    decoded: npt.NDArray[np.int16] = _DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]
    return decoded


def mulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 samples to G.711 mu-law bytes (exact G.711, one byte per sample)."""
    pcm = np.ascontiguousarray(samples, dtype=np.int16)
    encoded: npt.NDArray[np.uint8] = _ENCODE_TABLE[pcm.view(np.uint16)]
    return encoded.tobytes()
