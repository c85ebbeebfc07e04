"""Telephone audio: G.711 mu-law codec and streaming 8 kHz <-> 24 kHz PCM16 conversion.

Twilio Media Streams carry 8 kHz mu-law; the Realtime model in ``pcm16`` mode takes and produces 24 kHz
16-bit little-endian mono PCM. The converters here sit on the live path of every call, so they never hold
audio back: every input frame yields the matching output frame at once.
"""

from __future__ import annotations

from typing import NamedTuple

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


# --- 8 kHz <-> 24 kHz -------------------------------------------------------------------------------------
#
# One minimum-phase low-pass FIR at 24 kHz serves both directions: it is the interpolation filter of the
# 1:3 upsampler and the anti-alias filter of the 3:1 downsampler. Minimum phase keeps the group delay under
# a millisecond across the telephone band (a linear-phase filter this steep would hold ~2.3 ms), and an FIR
# needs no per-sample recursion.
#
# Each call costs a handful of numpy calls, whose fixed overhead dominates at 20 ms frames, so the filter
# runs as one matrix product per call: the input is cut into blocks of `_OUTPUTS_PER_ROW` outputs, each row
# of a strided view holds the input samples one block needs, and a constant banded matrix maps a row to its
# outputs. Only outputs that are kept get computed (polyphase), and no sample waits for a later one.
#
# Coefficients are rounded to multiples of 2**-20. With int16 inputs every product and partial sum is then
# exactly representable in float64, so the result does not depend on summation order: output is
# bit-identical however the stream is chunked, whatever BLAS kernel numpy picks for a given block count.

RATE_TELEPHONE = 8000
RATE_MODEL = 24000
_RATIO = RATE_MODEL // RATE_TELEPHONE
_COEFFICIENT_SCALE = 2.0**20
# The filter, in units of 2**-20. Recipe (tests/unit/test_audio.py re-derives it): scipy.signal.remez with
# 221 taps, passband 0-3400 Hz, stopband 4400-12000 Hz, weights 1:300, fs 24000 (about 160 dB, twice what
# is wanted); then scipy.signal.minimum_phase (homomorphic, n_fft 2**16), which halves length and dB
# attenuation and front-loads the energy; then scaled to unity DC gain and rounded. Result: 111 taps, flat
# to 3400 Hz, >= 80 dB down from 4400 Hz, group delay 0.2-0.7 ms across 300-3400 Hz. The taps are written
# out rather than designed at import so the relay does not pay for importing scipy.signal (~1 s).
# fmt: off
_LOWPASS_TAPS_Q20 = (
    1536, 8838, 29332, 70630, 133911, 206856, 262396, 268272, 205651, 86402, -44788, -130112, -131798,
    -57683, 40548, 99045, 83663, 12387, -59125, -79179, -37856, 27854, 65127, 47385, -6380, -49782, -48442,
    -7322, 36082, 45297, 15461, -24823, -40298, -19781, 15983, 34704, 21543, -9266, -29181, -21628, 4315,
    24061, 20649, -788, -19497, -19030, -1612, 15538, 17067, 3137, -12182, -14963, -3996, 9390, 12859,
    4359, -7111, -10851, -4366, 5286, 8998, 4132, -3852, -7336, -3744, 2748, 5880, 3274, -1917, -4633,
    -2774, 1307, 3587, 2282, -870, -2728, -1825, 566, 2035, 1418, -361, -1489, -1069, 228, 1066, 781, -144,
    -746, -551, 93, 509, 374, -63, -337, -242, 45, 216, 148, -34, -133, -84, 26, 78, 42, -20, -42, -17, 15,
    20, 4, -10,
)
# fmt: on
_OUTPUTS_PER_ROW = 20  # 8 to 20 measured about equally fast; 20 makes a 20 ms Twilio frame 8 rows
# Larger chunks are converted in passes of at most this many rows. Besides bounding the buffers, this keeps
# each matrix product below the size at which OpenBLAS goes multi-threaded, which on a small relay host
# costs more CPU than it saves.
_MAX_ROWS = 64
# Rounding, saturating and (outbound) mu-law encoding are one table lookup per output, which costs less per
# frame than separate rint, minimum, maximum and cast calls. The filter computes outputs in half-sample
# units; truncating those toward zero and looking the result up rounds exactly (half away from zero).
# Negative truncated values index from the end of the table. Filter overshoot is bounded by the filter's
# absolute sum (~2.9x full scale), which the table covers.
_HALF_UNIT_RANGE = 1 << 18


def _build_saturation_table() -> npt.NDArray[np.int16]:
    index = np.arange(2 * _HALF_UNIT_RANGE, dtype=np.int64)
    half_units = np.where(index < _HALF_UNIT_RANGE, index, index - 2 * _HALF_UNIT_RANGE)
    rounded = np.where(half_units >= 0, (half_units + 1) // 2, -((1 - half_units) // 2))
    table: npt.NDArray[np.int16] = np.clip(rounded, -32768, 32767).astype("<i2")
    return table


_SATURATED_INT16 = _build_saturation_table()
_SATURATED_MULAW = _ENCODE_TABLE[_SATURATED_INT16.view(np.uint16)]


def _checked_taps() -> npt.NDArray[np.float64]:
    taps = np.array(_LOWPASS_TAPS_Q20, dtype=np.float64) / _COEFFICIENT_SCALE
    worst_gain = max(float(np.abs(taps[phase::_RATIO]).sum()) * _RATIO for phase in range(_RATIO))
    if taps.size % _RATIO or worst_gain * 32768 * 2 >= _HALF_UNIT_RANGE:
        raise RuntimeError("filter taps do not fit the polyphase layout or the saturation tables")
    return taps


LOWPASS_TAPS = _checked_taps()
"""The shared 24 kHz low-pass filter (unity DC gain, 111 taps); exposed for benchmarks and tests."""

_DECODE_TABLE_FLOAT = _DECODE_TABLE.astype(np.float64)


def _strided_rows(buffer: npt.NDArray[np.float64], width: int, step: int) -> npt.NDArray[np.float64]:
    item = buffer.itemsize
    rows = (buffer.size - width) // step + 1
    return np.lib.stride_tricks.as_strided(
        buffer, shape=(rows, width), strides=(step * item, item), writeable=False
    )


class _Plan(NamedTuple):
    """Views into a converter's buffers for one chunk shape, reused while that shape repeats."""

    new_samples: npt.NDArray[np.float64]  # where the chunk's samples go, right after history/held ones
    rows: npt.NDArray[np.float64]  # strided rows feeding the matrix product
    output: npt.NDArray[np.float64]  # the product's destination
    values: npt.NDArray[np.float64]  # the outputs kept, flat, in time order
    history_to: npt.NDArray[np.float64]  # state to carry: moved to the front of the buffer
    history_from: npt.NDArray[np.float64]
    held_samples: int  # (outbound) samples of an incomplete group left after this chunk


_MAX_PLANS = 64  # chunk shapes remembered per converter; Twilio frames and model deltas repeat a few


class InboundConverter:
    """Twilio -> model: 8 kHz mu-law bytes to 24 kHz PCM16 little-endian bytes, streaming.

    Every input byte yields exactly three output samples (six bytes) at once; nothing is held back.
    The only state is the filter history, so one converter serves one call's inbound stream.
    """

    def __init__(self) -> None:
        phase_taps = LOWPASS_TAPS.size // _RATIO
        # Zero-stuffing to 24 kHz loses a factor of 3 in level; the interpolation filter restores it.
        gains = LOWPASS_TAPS.reshape(phase_taps, _RATIO) * (_RATIO * 2)  # x2: half-sample units
        block = _OUTPUTS_PER_ROW  # input samples per row (each yields three outputs)
        width = block + phase_taps - 1
        # Output 3(n0+b)+p = sum_i gains[i, p] * x[n0+b-i]; row element j holds x[n0-(phase_taps-1)+j].
        self._row_matrix = np.zeros((width, block * _RATIO))
        for b in range(block):
            for i in range(phase_taps):
                self._row_matrix[b + phase_taps - 1 - i, b * _RATIO : (b + 1) * _RATIO] = gains[i]
        self._block = block
        self._history_len = phase_taps - 1
        self._max_samples = _MAX_ROWS * block
        self._buffer = np.zeros(self._history_len + self._max_samples)
        self._rows = _strided_rows(self._buffer, width, block)
        self._output = np.empty((_MAX_ROWS, block * _RATIO))
        self._plans: dict[int, _Plan] = {}

    def convert(self, mulaw: bytes) -> bytes:
        """Convert one chunk of mu-law; returns exactly ``6 * len(mulaw)`` bytes."""
        count = len(mulaw)
        if count > self._max_samples:
            step = self._max_samples
            return b"".join(self.convert(mulaw[start : start + step]) for start in range(0, count, step))
        plan = self._plans.get(count) or self._plan(count)
        _DECODE_TABLE_FLOAT.take(np.frombuffer(mulaw, dtype=np.uint8), out=plan.new_samples)
        # Rows past the new samples read stale buffer contents; `values` leaves their outputs out.
        np.matmul(plan.rows, self._row_matrix, out=plan.output)
        plan.history_to[...] = plan.history_from
        pcm: npt.NDArray[np.int16] = _SATURATED_INT16[plan.values.astype(np.intp)]
        return pcm.tobytes()

    def _plan(self, count: int) -> _Plan:
        history, row_count = self._history_len, -(-count // self._block)
        output = self._output[:row_count]
        plan = _Plan(
            new_samples=self._buffer[history : history + count],
            rows=self._rows[:row_count],
            output=output,
            values=output.reshape(-1)[: count * _RATIO],
            history_to=self._buffer[:history],
            history_from=self._buffer[count : count + history],
            held_samples=0,
        )
        if len(self._plans) < _MAX_PLANS:
            self._plans[count] = plan
        return plan

    def reset(self) -> None:
        """Forget the filter history, as at the start of a stream."""
        self._buffer[: self._history_len] = 0.0


class OutboundConverter:
    """Model -> Twilio: 24 kHz PCM16 little-endian bytes in any chunking to 8 kHz mu-law, streaming.

    Every complete group of three input samples yields one mu-law byte at once. An odd trailing byte and
    up to two samples of an incomplete group are carried into the next call, never zero-padded, so the
    output is identical however the input is split. Call :meth:`flush` at the end of a response and
    :meth:`reset` on barge-in.
    """

    def __init__(self) -> None:
        taps = LOWPASS_TAPS.size
        block = _OUTPUTS_PER_ROW
        width = _RATIO * block + taps - _RATIO
        # Output k = sum_i taps[i] * x[3k+2-i]: it needs nothing newer than its own group of three.
        # Row element j holds x[3*k0 - (taps-3) + j], so output k0+b takes taps[3b + taps-1 - j].
        self._row_matrix = np.zeros((width, block))
        for b in range(block):
            self._row_matrix[_RATIO * b : _RATIO * b + taps, b] = LOWPASS_TAPS[::-1] * 2  # half-sample units
        self._block = block
        self._history_len = taps - _RATIO
        self._max_samples = _MAX_ROWS * block * _RATIO - _RATIO  # room for two carried samples
        self._buffer = np.zeros(self._history_len + _MAX_ROWS * block * _RATIO)
        self._rows = _strided_rows(self._buffer, width, _RATIO * block)
        self._output = np.empty((_MAX_ROWS, block))
        self._plans: dict[tuple[int, int], _Plan] = {}
        self._held_samples = 0  # samples of an incomplete group, stored right after the history
        self._odd_byte = b""

    def convert(self, pcm: bytes) -> bytes:
        """Convert one chunk of PCM16LE; returns one mu-law byte per completed group of three samples."""
        if self._odd_byte:
            pcm = self._odd_byte + pcm
        usable = len(pcm) & ~1
        if usable != len(pcm):
            pcm, self._odd_byte = pcm[:usable], pcm[usable:]
        else:
            self._odd_byte = b""
        if usable > 2 * self._max_samples:
            step = 2 * self._max_samples
            return b"".join(self._convert_samples(pcm[at : at + step]) for at in range(0, usable, step))
        return self._convert_samples(pcm)

    def _convert_samples(self, pcm: bytes) -> bytes:
        key = (self._held_samples, len(pcm) // 2)
        plan = self._plans.get(key) or self._plan(*key)
        plan.new_samples[...] = np.frombuffer(pcm, dtype="<i2")
        self._held_samples = plan.held_samples
        if not plan.values.size:
            return b""
        np.matmul(plan.rows, self._row_matrix, out=plan.output)
        plan.history_to[...] = plan.history_from
        encoded: npt.NDArray[np.uint8] = _SATURATED_MULAW[plan.values.astype(np.intp)]
        return encoded.tobytes()

    def _plan(self, held: int, count: int) -> _Plan:
        groups, left_over = divmod(held + count, _RATIO)
        start, row_count, keep = (
            self._history_len + held,
            -(-groups // self._block),
            self._history_len + left_over,
        )
        output = self._output[:row_count]
        plan = _Plan(
            new_samples=self._buffer[start : start + count],
            rows=self._rows[:row_count],
            output=output,
            values=output.reshape(-1)[:groups],
            history_to=self._buffer[:keep],
            history_from=self._buffer[groups * _RATIO : groups * _RATIO + keep],
            held_samples=left_over,
        )
        if len(self._plans) < _MAX_PLANS:
            self._plans[(held, count)] = plan
        return plan

    def flush(self) -> bytes:
        """End of a response: emit the incomplete group (zero-padded), then reset for the next response."""
        tail = b""
        if self._held_samples:
            tail = self._convert_samples(bytes(2 * (_RATIO - self._held_samples)))
        self.reset()
        return tail

    def reset(self) -> None:
        """Barge-in: drop the filter history, held samples and any odd byte."""
        self._buffer[: self._history_len + _RATIO] = 0.0
        self._held_samples = 0
        self._odd_byte = b""
