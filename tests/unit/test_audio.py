import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import freqz, group_delay, minimum_phase, remez
from scipy.signal.windows import blackmanharris

from app.lib.audio import (
    LOWPASS_TAPS,
    InboundConverter,
    OutboundConverter,
    mulaw_decode,
    mulaw_encode,
)

RNG_SEED = 20240611


def _itu_mulaw_compress(sample: int) -> int:
    # ITU-T G.191 reference coder, written out scalar as in the standard's C source.
    magnitude = ((~sample) >> 2 if sample < 0 else sample >> 2) + 33
    magnitude = min(magnitude, 0x1FFF)
    segment, rest = 1, magnitude >> 6
    while rest:
        segment, rest = segment + 1, rest >> 1
    code = ((8 - segment) << 4) | (0x0F - ((magnitude >> segment) & 0x0F))
    return code | 0x80 if sample >= 0 else code


def _itu_mulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    inverted = ~code
    exponent = (inverted >> 4) & 0x07
    step = 4 << (exponent + 1)
    return sign * ((0x80 << exponent) + step * (inverted & 0x0F) + step // 2 - 4 * 33)


def _tone(freq_hz: float, rate: int, seconds: float, amplitude: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def _spectrum_db(
    samples: npt.NDArray[np.float64], rate: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    windowed = samples * blackmanharris(samples.size)
    power = np.abs(np.fft.rfft(windowed)).astype(np.float64) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / rate).astype(np.float64)
    level_db: npt.NDArray[np.float64] = 10 * np.log10(power / power.max() + 1e-30)
    return freqs, level_db


def _random_speechlike_pcm(rng: np.random.Generator, samples: int) -> bytes:
    # Noise shaped towards low frequencies with full-scale peaks, so saturation paths run too.
    noise = np.cumsum(rng.normal(0, 1500, samples + 64))
    noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
    return np.clip(noise[:samples] * 3, -32768, 32767).astype("<i2").tobytes()


def _random_split(data: bytes, rng: np.random.Generator, max_piece: int) -> list[bytes]:
    pieces, position = [], 0
    while position < len(data):
        size = int(rng.integers(0, max_piece + 1))  # zero-length pieces included
        pieces.append(data[position : position + size])
        position += size
    return pieces


def test_mulaw_encode_matches_itu_reference_for_every_sample() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int16)
    expected = bytes(_itu_mulaw_compress(int(s)) for s in samples)
    assert mulaw_encode(samples) == expected


def test_mulaw_decode_matches_itu_reference_and_round_trips() -> None:
    codes = bytes(range(256))
    decoded = mulaw_decode(codes)
    assert decoded.tolist() == [_itu_mulaw_expand(c) for c in codes]
    re_encoded = mulaw_encode(decoded)
    # Only "negative zero" (0x7F) re-encodes differently, to positive zero.
    assert [c for c in codes if re_encoded[c] != c] == [0x7F]
    assert re_encoded[0x7F] == 0xFF


def test_lowpass_taps_match_their_design_recipe() -> None:
    linear_phase = remez(221, [0, 3400, 4400, 12000], [1, 0], weight=[1, 300], fs=24000)
    designed = minimum_phase(linear_phase, method="homomorphic", n_fft=2**16)
    designed /= designed.sum()
    assert LOWPASS_TAPS.size == designed.size == 111
    assert np.abs(LOWPASS_TAPS - designed).max() <= 2.0**-20  # the written-out taps are the rounded design


def test_lowpass_is_flat_steep_and_short_delayed() -> None:
    freqs, response = freqz(LOWPASS_TAPS, worN=8192, fs=24000)
    level_db = 20 * np.log10(np.abs(response))
    assert np.abs(level_db[freqs <= 3400]).max() < 0.01
    assert level_db[freqs >= 4400].max() < -78
    _, delay = group_delay((LOWPASS_TAPS, [1.0]), w=np.linspace(300, 3400, 64), fs=24000)
    assert delay.max() / 24000 < 0.001


def test_every_20ms_frame_in_gives_exactly_20ms_out() -> None:
    rng = np.random.default_rng(RNG_SEED)
    inbound, outbound = InboundConverter(), OutboundConverter()
    for _ in range(200):
        assert len(inbound.convert(rng.bytes(160))) == 960
        assert len(outbound.convert(_random_speechlike_pcm(rng, 480))) == 160


def test_lengths_stay_exact_for_odd_and_large_chunks() -> None:
    rng = np.random.default_rng(RNG_SEED)
    inbound, outbound = InboundConverter(), OutboundConverter()
    for size in [0, 1, 7, 159, 161, 20_000]:
        assert len(inbound.convert(rng.bytes(size))) == 6 * size
    total_in = total_out = 0
    for size in [1, 1, 3, 5, 961, 959, 50_001, 2]:
        total_in += size
        total_out += len(outbound.convert(rng.bytes(size)))
        assert total_out == total_in // 6  # one byte per complete group of three samples, never more


def test_inbound_output_is_independent_of_chunking() -> None:
    rng = np.random.default_rng(RNG_SEED)
    mulaw = mulaw_encode(np.frombuffer(_random_speechlike_pcm(rng, 6_000), dtype="<i2"))
    whole = InboundConverter().convert(mulaw)
    for max_piece in [1, 7, 160, 3000]:
        converter = InboundConverter()
        pieces = _random_split(mulaw, rng, max_piece)
        assert b"".join(converter.convert(piece) for piece in pieces) == whole


def test_outbound_output_is_independent_of_chunking_including_odd_bytes() -> None:
    rng = np.random.default_rng(RNG_SEED)
    pcm = _random_speechlike_pcm(rng, 12_001)[:-1]  # ends on an odd byte
    reference = OutboundConverter()
    whole = reference.convert(pcm) + reference.flush()
    for max_piece in [1, 3, 5, 961, 30_000]:
        converter = OutboundConverter()
        pieces = _random_split(pcm, rng, max_piece)
        streamed = b"".join(converter.convert(piece) for piece in pieces) + converter.flush()
        assert streamed == whole


def test_reset_converter_behaves_like_a_fresh_one() -> None:
    rng = np.random.default_rng(RNG_SEED)
    mulaw, pcm = rng.bytes(800), _random_speechlike_pcm(rng, 2400)
    inbound = InboundConverter()
    inbound.convert(rng.bytes(333))
    inbound.reset()
    assert inbound.convert(mulaw) == InboundConverter().convert(mulaw)
    outbound = OutboundConverter()
    outbound.convert(_random_speechlike_pcm(rng, 1000)[:1999])  # leaves held samples and an odd byte
    outbound.reset()
    fresh = OutboundConverter()
    assert outbound.convert(pcm) + outbound.flush() == fresh.convert(pcm) + fresh.flush()


def test_flush_emits_the_held_partial_group_then_starts_clean() -> None:
    rng = np.random.default_rng(RNG_SEED)
    pcm = _random_speechlike_pcm(rng, 4)  # one full group and one held sample
    outbound = OutboundConverter()
    assert len(outbound.convert(pcm + b"\x01")) == 1  # the odd byte is carried, not a sample
    assert len(outbound.flush()) == 1
    assert outbound.flush() == b""
    next_response = _random_speechlike_pcm(rng, 960)
    assert outbound.convert(next_response) == OutboundConverter().convert(next_response)


def test_flush_of_full_groups_emits_nothing_more() -> None:
    outbound = OutboundConverter()
    assert len(outbound.convert(bytes(960))) == 160
    assert outbound.flush() == b""


@pytest.mark.parametrize("freq_hz", [300.0, 1000.0, 2500.0, 3400.0])
def test_inbound_upsampling_passes_tones_and_rejects_images(freq_hz: float) -> None:
    tone = _tone(freq_hz, 8000, 1.0, 16000)
    output = np.frombuffer(InboundConverter().convert(mulaw_encode(tone)), dtype="<i2")
    settled = output[2400:].astype(np.float64)
    gain_db = 20 * np.log10(settled.std() / mulaw_decode(mulaw_encode(tone))[800:].std())
    assert abs(gain_db) < 0.1
    freqs, level_db = _spectrum_db(settled, 24000)
    assert level_db[freqs > 4400].max() < -70


@pytest.mark.parametrize("freq_hz", [4400.0, 5500.0, 7900.0, 9300.0, 11900.0])
def test_outbound_downsampling_rejects_aliases(freq_hz: float) -> None:
    # A 1009 Hz carrier keeps the mu-law quantiser busy, so a faint alias would survive encoding.
    carrier = _tone(1009.0, 24000, 2.0, 3000).astype(np.float64)
    probe = _tone(freq_hz, 24000, 2.0, 16000).astype(np.float64)
    pcm = (carrier + probe).astype("<i2").tobytes()
    output = mulaw_decode(OutboundConverter().convert(pcm))[800:].astype(np.float64)
    freqs, level_db = _spectrum_db(output, 8000)
    carrier_bin = int(np.argmin(np.abs(freqs - 1009.0)))
    alias_hz = abs(freq_hz - 8000 * round(freq_hz / 8000))
    alias_bin = int(np.argmin(np.abs(freqs - alias_hz)))
    probe_vs_carrier_db = 20 * np.log10(16000 / 3000)
    alias_db = level_db[alias_bin - 2 : alias_bin + 3].max() - level_db[carrier_bin] - probe_vs_carrier_db
    assert alias_db < -70


def test_outbound_passes_in_band_tone_at_unity_gain() -> None:
    tone = _tone(1000.0, 24000, 0.5, 16000)
    output = mulaw_decode(OutboundConverter().convert(tone.astype("<i2").tobytes()))[400:]
    gain_db = 20 * np.log10(output.astype(np.float64).std() / tone.astype(np.float64).std())
    assert abs(gain_db) < 0.1


def test_impulse_and_step_come_out_within_a_millisecond() -> None:
    impulse = np.zeros(400, dtype=np.int16)
    impulse[100] = 30000
    upsampled = np.frombuffer(InboundConverter().convert(mulaw_encode(impulse)), dtype="<i2")
    assert (int(np.argmax(np.abs(upsampled))) - 300) / 24000 < 0.001
    step = np.zeros(2400, dtype=np.int16)
    step[1200:] = 10000
    downsampled = mulaw_decode(OutboundConverter().convert(step.astype("<i2").tobytes()))
    first_half_way = int(np.argmax(downsampled > 5000))
    assert 0 <= (first_half_way - 400) / 8000 < 0.001
