"""Figures for the relay's pcm16 audio path (app.lib.audio) on real speech: ``python -m bench.audio_bench``.

Speech comes from espeak-ng (app.sim.speech), offline. Every figure is printed with its bar and PASS/FAIL;
rows without a bar are for comparison. The soxr rows measure the streaming resampler a popular framework
uses by default (soxr ResampleStream, quality VHQ), fed the same 20 ms frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr
from pesq import pesq
from scipy.signal import csd, freqz, resample_poly
from scipy.signal.windows import blackmanharris

from app.lib.audio import LOWPASS_TAPS, InboundConverter, OutboundConverter, mulaw_decode, mulaw_encode
from app.sim.speech import synthesize, synthesize_mulaw

SENTENCES = [
    "Thanks for calling Bright Smile Dental, this is the virtual assistant.",
    "We are open Monday to Friday from eight in the morning until six in the evening.",
    "I can book you in on Tuesday the fourteenth at a quarter past three, does that work?",
    "Please hold for a moment while I transfer you to the front desk.",
    "Your appointment is confirmed. Is there anything else I can help you with today?",
]
FRAME_MS = 20
INBOUND_FRAME = 160  # mu-law bytes per 20 ms at 8 kHz
OUTBOUND_FRAME = 960  # PCM16 bytes per 20 ms at 24 kHz
DRIFT_FRAMES = 50_000
MAX_DELAY_MS = 3.0
MIN_PESQ = 4.15  # the bar, each direction
MAX_SPURIOUS_DB = -70.0
MAX_CPU_US = 25.0
TIMING_RUNS, TIMING_PAIRS = 25, 2_000  # many short runs, so some land in a quiet spell on a shared host
# G.711 alone scores ~4.19 on natural speech, which is what the 4.15 bar allows 0.04 below. On material
# where G.711 alone scores lower (espeak-ng's buzzy male voice: ~3.99) no converter can reach 4.15, so
# there the bar is the same 0.04 below that material's own G.711 floor.
PESQ_FLOOR_PREMISE, PESQ_ALLOWED_LOSS = 4.19, 0.04
VOICES = {"en-us": "male", "en-us+f3": "female"}
SPEECH_BAND_HZ = (300.0, 3400.0)

Floats = npt.NDArray[np.float64]


@dataclass
class Row:
    figure: str
    value: str
    bar: str = ""
    passed: bool | None = None


def _speech(voice: str) -> tuple[bytes, bytes]:
    """The same utterances as 8 kHz mu-law (caller side) and 24 kHz PCM16LE bytes (model side)."""
    mulaw_gap, pcm_gap = mulaw_encode(np.zeros(1600, dtype=np.int16)), bytes(2 * 4800)
    mulaw = b"".join(synthesize_mulaw(text, voice=voice) + mulaw_gap for text in SENTENCES)
    pcm = b"".join(synthesize(text, voice=voice).astype("<i2").tobytes() + pcm_gap for text in SENTENCES)
    return mulaw, pcm


def _frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


def _to_int16(values: Floats) -> npt.NDArray[np.int16]:
    return np.clip(np.round(values), -32768, 32767).astype(np.int16)


def _pcm(data: bytes) -> Floats:
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def _xcorr_delay(reference: Floats, output: Floats, rate: int, max_ms: float = 10.0) -> float:
    """Delay of ``output`` behind ``reference`` in ms, to a fraction of a sample (parabolic peak)."""
    length = min(reference.size, output.size)
    spectrum = np.fft.rfft(output[:length], 2 * length) * np.conj(np.fft.rfft(reference[:length], 2 * length))
    correlation = np.fft.irfft(spectrum)
    max_lag = int(rate * max_ms / 1000)
    lags = np.arange(-max_lag, max_lag + 1)
    window = correlation[lags]
    peak = int(np.argmax(window))
    left, centre, right = window[peak - 1], window[peak], window[peak + 1]
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return float((lags[peak] + offset) / rate * 1000)


def _group_delay_ms(reference: Floats, output: Floats, rate: int) -> tuple[float, float]:
    """Max and mean group delay over the speech band, from the phase slope of the cross-spectrum."""
    freqs, cross = csd(reference, output, fs=rate, nperseg=2048)
    phase = np.unwrap(np.angle(cross))
    delay = -np.diff(phase) / np.diff(2 * np.pi * freqs) * 1000
    centres = (freqs[1:] + freqs[:-1]) / 2
    band = (centres >= SPEECH_BAND_HZ[0]) & (centres <= SPEECH_BAND_HZ[1])
    return float(delay[band].max()), float(delay[band].mean())


def _spectrum_db(samples: Floats, rate: int) -> tuple[Floats, Floats]:
    power = np.abs(np.fft.rfft(samples * blackmanharris(samples.size))).astype(np.float64) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / rate).astype(np.float64)
    level_db: Floats = 10 * np.log10(power + 1e-30)
    return freqs, level_db


def _tone(freq_hz: float, rate: int, seconds: float, amplitude: float) -> Floats:
    return amplitude * np.sin(2 * np.pi * freq_hz * np.arange(int(rate * seconds)) / rate)


def _shift(samples: Floats, delay_samples: int) -> Floats:
    """Advance ``samples`` by a delay, keeping the length (PESQ needs equal-length inputs)."""
    if delay_samples <= 0:
        return samples
    return np.concatenate([samples[delay_samples:], np.zeros(delay_samples)])


def _sizes(sizes: set[int]) -> str:
    return ",".join(str(size) for size in sorted(sizes))


def _check(figure: str, value: float, fmt: str, bar: str, passed: bool) -> Row:
    return Row(figure, format(value, fmt), bar, passed)


def framing_and_drift(mulaw: bytes, pcm: bytes) -> list[Row]:
    inbound, outbound = InboundConverter(), OutboundConverter()
    in_frames, out_frames = _frames(mulaw, INBOUND_FRAME), _frames(pcm, OUTBOUND_FRAME)
    in_sizes = {len(inbound.convert(frame)) for frame in in_frames}
    out_sizes = {len(outbound.convert(frame)) for frame in out_frames}
    inbound, outbound = InboundConverter(), OutboundConverter()
    in_total = sum(len(inbound.convert(in_frames[i % len(in_frames)])) for i in range(DRIFT_FRAMES)) // 2
    out_total = sum(len(outbound.convert(out_frames[i % len(out_frames)])) for i in range(DRIFT_FRAMES))
    in_expected, out_expected = 3 * INBOUND_FRAME * DRIFT_FRAMES, OUTBOUND_FRAME // 2 // 3 * DRIFT_FRAMES
    return [
        Row(
            "inbound: bytes out per 160 B frame in",
            _sizes(in_sizes),
            "== 960",
            in_sizes == {960},
        ),
        Row(
            "outbound: bytes out per 960 B frame in",
            _sizes(out_sizes),
            "== 160",
            out_sizes == {160},
        ),
        Row(
            f"inbound drift over {DRIFT_FRAMES:,} frames (samples out)",
            f"{in_total:,}",
            f"== 3 x in = {in_expected:,}",
            in_total == in_expected,
        ),
        Row(
            f"outbound drift over {DRIFT_FRAMES:,} frames (samples out)",
            f"{out_total:,}",
            f"== in / 3 = {out_expected:,}",
            out_total == out_expected,
        ),
    ]


def chunking_and_state(mulaw: bytes, pcm: bytes, trials: int = 12) -> list[Row]:
    rng = np.random.default_rng(7)

    def split(data: bytes, max_piece: int) -> Iterator[bytes]:
        position = 0
        while position < len(data):
            size = int(rng.integers(0, max_piece + 1))
            yield data[position : position + size]
            position += size

    whole_in = InboundConverter().convert(mulaw)
    reference = OutboundConverter()
    whole_out = reference.convert(pcm) + reference.flush()
    same_in = same_out = 0
    for trial in range(trials):
        max_piece = [7, 161, 999, 4001][trial % 4]
        inbound = InboundConverter()
        same_in += b"".join(inbound.convert(piece) for piece in split(mulaw, max_piece)) == whole_in
        outbound = OutboundConverter()
        streamed = b"".join(outbound.convert(piece) for piece in split(pcm, 6 * max_piece)) + outbound.flush()
        same_out += streamed == whole_out
    # Barge-in mid-stream (held samples and an odd byte pending), then a new response: reset must leave
    # no trace. A response of n samples must come out as ceil(n / 3) bytes once flushed.
    interrupted = OutboundConverter()
    interrupted.convert(pcm[:20_001])
    interrupted.reset()
    fresh = OutboundConverter()
    reset_clean = interrupted.convert(pcm) + interrupted.flush() == fresh.convert(pcm) + fresh.flush()
    response = OutboundConverter()
    flushed = len(response.convert(pcm[:20_000])) + len(response.flush()) == -(-10_000 // 3)
    return [
        Row("outbound reset (barge-in) leaves no state behind", str(reset_clean), "True", reset_clean),
        Row("outbound flush emits the held partial group", str(flushed), "True", flushed),
        Row("inbound bit-identical under random chunkings", f"{same_in}/{trials}", "all", same_in == trials),
        Row(
            "outbound bit-identical, random chunkings incl. odd bytes",
            f"{same_out}/{trials}",
            "all",
            same_out == trials,
        ),
    ]


def delays(mulaw: bytes, pcm: bytes) -> tuple[list[Row], float, float]:
    decoded_8k = mulaw_decode(mulaw).astype(np.float64)
    inbound_out = _pcm(InboundConverter().convert(mulaw))
    in_speech = _xcorr_delay(resample_poly(decoded_8k, 3, 1), inbound_out, 24000)
    outbound_out = mulaw_decode(OutboundConverter().convert(pcm)).astype(np.float64)
    out_speech = _xcorr_delay(resample_poly(_pcm(pcm), 1, 3), outbound_out, 8000)

    rng = np.random.default_rng(11)
    noise_8k = mulaw_encode(_to_int16(rng.normal(0, 4000, 8000 * 10)))
    noise_24k = _to_int16(resample_poly(rng.normal(0, 4000, 8000 * 10), 3, 1)).astype("<i2").tobytes()
    in_max, in_mean = _group_delay_ms(
        resample_poly(mulaw_decode(noise_8k).astype(np.float64), 3, 1),
        _pcm(InboundConverter().convert(noise_8k)),
        24000,
    )
    out_max, out_mean = _group_delay_ms(
        resample_poly(_pcm(noise_24k), 1, 3),
        mulaw_decode(OutboundConverter().convert(noise_24k)).astype(np.float64),
        8000,
    )
    bar = f"<= {MAX_DELAY_MS:g} ms"

    def delay_row(figure: str, value_ms: float) -> Row:
        return _check(figure, value_ms, ".2f", bar, value_ms <= MAX_DELAY_MS)

    rows = [
        delay_row("inbound delay on speech, ms (cross-correlation)", in_speech),
        delay_row("inbound group delay 300-3400 Hz, ms, max (phase slope)", in_max),
        Row("  mean over the band", f"{in_mean:.2f}"),
        delay_row("outbound delay on speech, ms (cross-correlation)", out_speech),
        delay_row("outbound group delay 300-3400 Hz, ms, max (phase slope)", out_max),
        Row("  mean over the band", f"{out_mean:.2f}"),
    ]
    return rows, in_speech, out_speech


def quality(voice: str, in_delay_ms: float, out_delay_ms: float) -> list[Row]:
    mulaw, pcm = _speech(voice)
    source_8k = mulaw_decode(mulaw).astype(np.float64)
    inbound_out = _pcm(InboundConverter().convert(mulaw))
    in_score = pesq(8000, source_8k, resample_poly(_shift(inbound_out, round(in_delay_ms * 24)), 1, 3), "nb")
    in_raw = pesq(8000, source_8k, resample_poly(inbound_out, 1, 3), "nb")
    reference_8k = _to_int16(resample_poly(_pcm(pcm), 1, 3)).astype(np.float64)
    outbound_out = mulaw_decode(OutboundConverter().convert(pcm)).astype(np.float64)
    out_score = pesq(8000, reference_8k, _shift(outbound_out, round(out_delay_ms * 8)), "nb")
    out_raw = pesq(8000, reference_8k, outbound_out, "nb")
    floor = pesq(
        8000, reference_8k, mulaw_decode(mulaw_encode(_to_int16(reference_8k))).astype(np.float64), "nb"
    )
    out_bar = min(MIN_PESQ, floor - PESQ_ALLOWED_LOSS) if floor < PESQ_FLOOR_PREMISE else MIN_PESQ
    label = f"{voice} ({VOICES[voice]}), aligned / raw"
    return [
        Row(
            f"inbound PESQ-NB, {label}",
            f"{in_score:.3f} / {in_raw:.3f}",
            f">= {MIN_PESQ}",
            in_score >= MIN_PESQ,
        ),
        Row(
            f"outbound PESQ-NB, {label}",
            f"{out_score:.3f} / {out_raw:.3f}",
            f">= {out_bar:.3f}" + ("" if out_bar == MIN_PESQ else " (G.711 floor-0.04)"),
            out_score >= out_bar,
        ),
        Row("  G.711 alone: reference 8k -> mu-law -> back", f"{floor:.3f}"),
    ]


def spurious() -> list[Row]:
    worst_image = -np.inf
    for freq in [300.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3400.0]:
        tone = mulaw_encode(_to_int16(_tone(freq, 8000, 1.5, 16000)))
        output = _pcm(InboundConverter().convert(tone))[2400:]
        freqs, level = _spectrum_db(output, 24000)
        worst_image = max(worst_image, float(level[freqs > 4400].max() - level.max()))
    worst_alias = -np.inf
    # A 1009 Hz carrier keeps the mu-law quantiser busy, so a faint alias survives encoding and shows.
    carrier_amplitude, probe_amplitude = 3000.0, 16000.0
    for freq in [4400.0, 5000.0, 6000.0, 7000.0, 7900.0, 8100.0, 9000.0, 10000.0, 11000.0, 11900.0]:
        mixed = _tone(1009.0, 24000, 2.0, carrier_amplitude) + _tone(freq, 24000, 2.0, probe_amplitude)
        decoded = mulaw_decode(OutboundConverter().convert(_to_int16(mixed).astype("<i2").tobytes()))
        freqs, level = _spectrum_db(decoded[800:].astype(np.float64), 8000)
        carrier_db = level[np.argmin(np.abs(freqs - 1009.0))]
        alias_bin = int(np.argmin(np.abs(freqs - abs(freq - 8000 * round(freq / 8000)))))
        alias_db = level[alias_bin - 2 : alias_bin + 3].max() - carrier_db
        worst_alias = max(worst_alias, float(alias_db - 20 * np.log10(probe_amplitude / carrier_amplitude)))
    freqs, response = freqz(LOWPASS_TAPS, worN=1 << 15, fs=24000)
    stopband = float(20 * np.log10(np.abs(response[freqs >= 4400]).max()))
    bar = f"<= {MAX_SPURIOUS_DB:g} dB"
    return [
        _check(
            "inbound images > 4.4 kHz, tones 300-3400 Hz (worst)",
            worst_image,
            ".1f",
            bar,
            worst_image <= MAX_SPURIOUS_DB,
        ),
        _check(
            "outbound aliases of 4.4-12 kHz tones into band (worst)",
            worst_alias,
            ".1f",
            bar,
            worst_alias <= MAX_SPURIOUS_DB,
        ),
        Row("filter stopband >= 4.4 kHz, from the taps (dB)", f"{stopband:.1f}"),
    ]


FramePair = tuple[Callable[[bytes], object], Callable[[bytes], object]]


def _time_frame_pairs(contenders: list[FramePair], mulaw: bytes, pcm: bytes) -> list[list[float]]:
    """CPU microseconds per frame pair, TIMING_RUNS runs per contender.

    Runs of the contenders alternate, so a noisy spell on the shared host hits them alike.
    """
    in_frames, out_frames = _frames(mulaw, INBOUND_FRAME), _frames(pcm, OUTBOUND_FRAME)
    count = min(len(in_frames), len(out_frames))
    schedule = [(in_frames[i % count], out_frames[i % count]) for i in range(TIMING_PAIRS)]
    per_pair: list[list[float]] = [[] for _ in contenders]
    for inbound, outbound in contenders:
        for in_frame, out_frame in schedule[:500]:  # warm caches and allocator
            inbound(in_frame)
            outbound(out_frame)
    for _ in range(TIMING_RUNS):
        for (inbound, outbound), runs in zip(contenders, per_pair, strict=True):
            cpu_start = time.process_time_ns()
            for in_frame, out_frame in schedule:
                inbound(in_frame)
                outbound(out_frame)
            runs.append((time.process_time_ns() - cpu_start) / TIMING_PAIRS / 1000)
    return per_pair


def _held_back_ms(
    inbound: Callable[[bytes], int], outbound: Callable[[bytes], int], mulaw: bytes, pcm: bytes
) -> tuple[list[float], list[float]]:
    """Per 20 ms frame fed, how much of the audio fed so far has not come out yet (ms), each direction."""
    held_in, held_out, samples_in, samples_out = [], [], 0, 0
    frames = zip(_frames(mulaw, INBOUND_FRAME), _frames(pcm, OUTBOUND_FRAME), strict=False)
    for index, (in_frame, out_frame) in enumerate(frames):
        samples_in += inbound(in_frame)
        samples_out += outbound(out_frame)
        held_in.append(FRAME_MS * (index + 1) - samples_in / 24)
        held_out.append(FRAME_MS * (index + 1) - samples_out / 8)
    return held_in, held_out


def _host_noise() -> float:
    """Slowest / fastest of repeated runs of a fixed pure-Python loop: how noisy the host is right now."""
    runs = []
    for _ in range(TIMING_RUNS):
        start = time.process_time_ns()
        total = 0
        for value in range(100_000):
            total += value
        runs.append(time.process_time_ns() - start)
    return max(runs) / min(runs)


def cost_and_soxr(mulaw: bytes, pcm: bytes) -> list[Row]:
    inbound, outbound = InboundConverter(), OutboundConverter()
    ours_in, ours_out = _held_back_ms(
        lambda frame: len(inbound.convert(frame)) // 2, lambda frame: len(outbound.convert(frame)), mulaw, pcm
    )
    up = soxr.ResampleStream(8000, 24000, 1, dtype="int16", quality="VHQ")
    down = soxr.ResampleStream(24000, 8000, 1, dtype="int16", quality="VHQ")
    soxr_in, soxr_out = _held_back_ms(
        lambda frame: int(up.resample_chunk(mulaw_decode(frame)).size),
        lambda frame: int(down.resample_chunk(np.frombuffer(frame, dtype="<i2")).size),
        mulaw,
        pcm,
    )
    inbound, outbound = InboundConverter(), OutboundConverter()
    runs, soxr_runs = _time_frame_pairs(
        [
            (inbound.convert, outbound.convert),
            (
                lambda frame: up.resample_chunk(mulaw_decode(frame)),
                lambda frame: down.resample_chunk(np.frombuffer(frame, dtype="<i2")),
            ),
        ],
        mulaw,
        pcm,
    )
    fastest = min(runs)
    return [
        # The fastest run is the code's own cost; slower runs measure other tenants of the host (see noise).
        _check(
            f"CPU per 20 ms frame pair, us, fastest of {TIMING_RUNS} x {TIMING_PAIRS:,}",
            fastest,
            ".1f",
            f"<= {MAX_CPU_US:g} us",
            fastest <= MAX_CPU_US,
        ),
        Row("  median / slowest run (us)", f"{np.median(runs):.1f} / {max(runs):.1f}"),
        Row("  host noise: fixed Python loop, slowest / fastest", f"{_host_noise():.2f}x"),
        Row(
            "audio held back after each frame, ours, max (ms)",
            f"{max(ours_in):.1f} / {max(ours_out):.1f}",
            "in / out",
        ),
        Row(
            "soxr VHQ stream: held back, median (ms)",
            f"{np.median(soxr_in):.1f} / {np.median(soxr_out):.1f}",
            "in / out",
        ),
        Row("soxr VHQ stream: held back, max (ms)", f"{max(soxr_in):.1f} / {max(soxr_out):.1f}", "in / out"),
        Row(
            "soxr VHQ stream: CPU per frame pair, fastest / median (us)",
            f"{min(soxr_runs):.1f} / {np.median(soxr_runs):.1f}",
        ),
    ]


def main() -> None:
    started = time.perf_counter()
    voices = [_speech(voice) for voice in VOICES]  # a caller and an agent, one voice each
    mulaw, pcm = b"".join(m for m, _ in voices), b"".join(p for _, p in voices)
    rows = framing_and_drift(mulaw, pcm)
    rows += chunking_and_state(mulaw, pcm)
    delay_rows, in_delay, out_delay = delays(mulaw, pcm)
    rows += delay_rows
    for voice in VOICES:
        rows += quality(voice, in_delay, out_delay)
    rows += spurious()
    rows += cost_and_soxr(mulaw, pcm)
    material = (
        f"{len(mulaw) / 8000:.1f} s of espeak-ng speech, {len(SENTENCES)} sentences x {len(VOICES)} voices"
    )
    print(f"app.lib.audio on {material}\n")
    width = max(len(row.figure) for row in rows)
    print(f"{'figure':<{width}}  {'value':>15}  {'bar':<26} result")
    for row in rows:
        verdict = "" if row.passed is None else ("PASS" if row.passed else "FAIL")
        print(f"{row.figure:<{width}}  {row.value:>15}  {row.bar:<26} {verdict}")
    checked = [row for row in rows if row.passed is not None]
    failed = sum(not row.passed for row in checked)
    print(f"\n{failed} of {len(checked)} bars failed; ran in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
