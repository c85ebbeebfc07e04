"""Latency and cost of the relay on this machine: ``python -m bench.relay_bench [--quick]``.

The relay under test is the production app and server (`create_app` + `app.server.run_relay`) in its own
process, so its CPU time is its own; its upstreams point at simulators in this process.

1. Greeting: Twilio `start` -> first greeting frame at the caller, the simulated model taking 300 ms to start
   speaking, for a stream opened right after the webhook answer and after realistic Twilio setup gaps.
2. Barge-in: the simulator's `speech_started` -> `clear` at the caller, and inside the relay.
3. Steady state at 1, 50 and 100 concurrent calls (callers talking 50 frames/s, the model streaming 50
   frames/s back): the relay's CPU per frame relayed and the one-way latency a frame picks up.

Figures with a bar from the issue are judged PASS/FAIL; bars marked * are this bench's own checks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence

import httpx
import uvloop

from app.sim.realtime_script import SimTurn
from app.sim.realtime_server import RealtimeSimulator
from bench._relay_latency import BargeInSample, GreetingSample, barge_in_samples, greeting_samples
from bench._relay_load import LoadResult, Window, expected_frames, run_load
from bench._relay_load_peers import FRAME_SECONDS, LoadModel
from bench._relay_process import relay_process
from bench._relay_stats import Row, Spread, render, spread

FIRST_AUDIO_DELAY = 0.3
GREETING_BAR_MS = 500.0
RELAY_SHARE_BAR_MS = 20.0
REAL_TIME_SHARE = 0.98  # * frames relayed per second, each way, as a share of real time
ONE_WAY_P95_MS = 50.0  # * the relay hop's slice of G.114's 150 ms mouth-to-ear budget, generously
GAPS = (0.0, 0.3, 0.5)  # s between the webhook answer and the stream's `start`
LEGEND = """\
What is measured (all stamps are perf_counter = CLOCK_MONOTONIC, one clock for every process):
  start -> first frame   caller stamps just before sending `start`; first agent media frame arrives.
  relay's own share      ingress of whichever came last, the stream (`start` sent -> Call.timings.
                         stream_started_at) or the model's first delta (simulator sends it -> first_delta_at),
                         + hold: first_audio_sent_at - max(stream_started_at, first_delta_at).
  barge-in               simulator puts speech_started on the wire -> `clear` arrives at the caller; the
                         relay's part is Call.timings.last_barge_in_ms (handler entry -> clear sent).
  CPU per frame          relay process utime+stime over the window / 20 ms frames relayed (caller->model
                         appends that reached the model + model->caller audio that reached the callers);
                         each model->caller frame also costs the relay a mark and its echo.
  one-way                every frame carries a tag in its first 6 bytes: sent stamp -> far-end arrival.
  median / p95 / max; * = this bench's own check (the issue sets the greeting bars only)."""


async def latency_phase(greeting_calls: int, barge_ins: int, relay_loop: str) -> list[Row]:
    script = [SimTurn(audio_seconds=30.0) for _ in range(barge_ins + 2)]
    sim = RealtimeSimulator(script=script, first_audio_delay=FIRST_AUDIO_DELAY)
    await sim.start()
    try:
        async with (
            relay_process(sim.base_url, loop=relay_loop) as relay,
            httpx.AsyncClient(timeout=5, trust_env=False) as http,
        ):
            rows: list[Row] = []
            for gap in GAPS:
                samples = await greeting_samples(relay, sim, http, gap=gap, calls=greeting_calls)
                rows += greeting_rows(gap, samples)
            rows += barge_in_rows(await barge_in_samples(relay, sim, http, count=barge_ins))
        if sim.validation_errors:
            rows.append(Row("simulator validation errors", str(len(sim.validation_errors)), "0", False))
        return rows
    finally:
        await sim.stop()


def greeting_rows(gap: float, samples: Sequence[GreetingSample]) -> list[Row]:
    label = "stream right after the webhook" if gap == 0 else f"stream {gap * 1000:.0f} ms after the webhook"
    first = spread([s.first_frame for s in samples])
    share = spread([s.relay_share for s in samples])
    assert first is not None and share is not None
    model_bound = sum(s.model_bound for s in samples)

    def median(values: list[float]) -> str:
        found = spread(values)
        return f"{found.median:.2f}" if found else "-"

    parts = (
        f"start ingress {median([s.start_ingress for s in samples])}, "
        f"delta ingress {median([s.delta_ingress for s in samples])}, "
        f"hold {median([s.hold for s in samples])}, "
        f"to caller {median([s.delivery for s in samples])} ms; waited on model {model_bound}/{len(samples)}"
    )
    return [
        Row(
            f"greeting, {label}: start -> first frame",
            first.text(),
            f"max < {GREETING_BAR_MS:.0f} ms",
            first.max < GREETING_BAR_MS,
        ),
        Row(
            "  relay's own share",
            share.text(digits=2),
            f"max < {RELAY_SHARE_BAR_MS:.0f} ms",
            share.max < RELAY_SHARE_BAR_MS,
        ),
        Row("  medians", parts),
    ]


def barge_in_rows(samples: Sequence[BargeInSample]) -> list[Row]:
    end_to_end = spread([s.end_to_end for s in samples])
    handler = spread([s.handler for s in samples])
    assert end_to_end is not None and handler is not None
    return [
        Row("barge-in: model speech_started -> clear at caller", end_to_end.text(digits=2)),
        Row("  relay handler entry -> clear sent", handler.text(digits=3)),
    ]


async def load_phase(
    calls: Sequence[int], window: float, split: bool, relay_loop: str, delta_frames: int
) -> list[Row]:
    model = LoadModel(first_audio_delay=FIRST_AUDIO_DELAY, delta_frames=delta_frames)
    await model.start()
    try:
        async with (
            relay_process(model.base_url, loop=relay_loop) as relay,
            httpx.AsyncClient(timeout=5, trust_env=False) as http,
        ):
            idle_cpu = relay.cpu_seconds()
            await asyncio.sleep(2.0)
            idle_load = (relay.cpu_seconds() - idle_cpu) / 2.0
            rows = [Row("relay process idle, no calls: CPU", f"{idle_load * 100:.1f}% of one core")]
            for count in calls:
                result = await run_load(relay, model, http, calls=count, window=window, split=split)
                rows += load_rows(result)
        return rows
    finally:
        await model.stop()


def load_rows(result: LoadResult) -> list[Row]:
    both, calls = result.both, result.calls
    per_call_in = both.inbound_frames / both.seconds / calls
    per_call_out = both.outbound_frames / both.seconds / calls
    rate = min(both.inbound_frames, both.outbound_frames) / expected_frames(calls, both.seconds)
    real_time = rate >= REAL_TIME_SHARE and both.inbound_late == 0
    saturated = "" if real_time else " (relay behind real time: not a steady state)"
    rows = [
        Row(
            f"{calls} call{'s' if calls > 1 else ''}: relay CPU per frame relayed, both ways",
            f"{both.relay_us_per_frame:.0f} us{saturated}",
        )
    ]
    if result.inbound_only is not None and result.outbound_only is not None:
        alone_in, alone_out = result.inbound_only.relay_us_per_frame, result.outbound_only.relay_us_per_frame
        rows.append(
            Row(
                "  one way at a time",
                f"caller->model {alone_in:.0f} us, model->caller {alone_out:.0f} us (+ its mark and echo)",
            )
        )
    rows += [
        Row(
            "  relay process CPU",
            f"{both.relay_load * 100:.0f}% of one core",
            "* < 90%",
            both.relay_load < 0.9,
        ),
        Row(
            "  frames relayed per call",
            f"{per_call_in:.1f}/s in, {per_call_out:.1f}/s out, "
            f"{both.inbound_late} of {both.inbound_sent} over 1 s late",
            f"* >= {REAL_TIME_SHARE * 50:.0f}/s, none late",
            real_time,
        ),
        _latency_row("  caller -> model one-way", both.inbound_latency),
        _latency_row("  model -> caller one-way", both.outbound_latency),
        Row("  load generator (this process) CPU", _generator(both)),
        Row("  other processes on the machine", _others(both)),
    ]
    steady = real_time and all(
        found is not None and found.p95 < ONE_WAY_P95_MS
        for found in (both.inbound_latency, both.outbound_latency)
    )
    if calls > 1 and steady:
        # One event loop is one core: the calls whose frames it could relay at this cost, at 100% busy.
        # Only from a steady window: a relay behind real time batches more and looks cheaper per frame.
        capacity = 1e6 / (both.relay_us_per_frame * 2 / FRAME_SECONDS)
        rows.append(Row("  => calls one relay process could carry", f"~{capacity:.0f} (a core at 100%)"))
    return rows


def _others(window: Window) -> str:
    note = " (busy box: latency above inflated)" if window.others_load > 0.25 else ""
    return f"{window.others_load * 100:.0f}% of one core{note}"


def _latency_row(figure: str, found: Spread | None) -> Row:
    if found is None:
        return Row(figure, "-", f"* p95 < {ONE_WAY_P95_MS:.0f} ms", False)
    return Row(figure, found.text(digits=2), f"* p95 < {ONE_WAY_P95_MS:.0f} ms", found.p95 < ONE_WAY_P95_MS)


def _generator(window: Window) -> str:
    saturated = "SATURATED, figures above are a floor" if window.bench_load > 0.9 else "not saturated"
    return f"{window.bench_load * 100:.0f}% of one core ({saturated})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and shorter windows (~1 minute)")
    parser.add_argument("--calls", default="1,50,100", help="concurrent-call counts for the load phase")
    parser.add_argument("--window", type=float, help="seconds per measured load window")
    parser.add_argument(
        "--relay-loop",
        choices=("production", "uvloop"),
        default="production",
        help="production = app.server.run_relay as is; uvloop = the same server on uvloop (a what-if)",
    )
    parser.add_argument(
        "--delta-ms",
        type=int,
        default=20,
        choices=(20, 40, 60, 100, 200),
        help="model audio per delta in the load phase (20 = one Twilio frame, the worst case)",
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> list[tuple[str, list[Row]]]:
    greeting_calls, barge_ins = (4, 5) if args.quick else (8, 10)
    window = args.window or (3.0 if args.quick else 8.0)
    calls = [int(count) for count in args.calls.split(",") if count.strip()]
    tables = []
    if not args.skip_latency:
        tables.append(
            (
                "Latency (full simulators, one call at a time)",
                await latency_phase(greeting_calls, barge_ins, args.relay_loop),
            )
        )
    if not args.skip_load:
        title = f"Steady state, {window:.0f} s windows, {args.delta_ms} ms model deltas (lean load peers)"
        rows = await load_phase(calls, window, not args.quick, args.relay_loop, args.delta_ms // 20)
        tables.append((title, rows))
    return tables


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        tables = runner.run(run(args))
    print(
        f"relay bench: {os.cpu_count()} cores, relay loop: {args.relay_loop}, "
        f"model first audio after {FIRST_AUDIO_DELAY * 1000:.0f} ms\n"
    )
    for title, rows in tables:
        print(render(title, rows) + "\n")
    print(LEGEND + "\n")
    checked = [row for _, rows in tables for row in rows if row.passed is not None]
    failed = [row for row in checked if not row.passed]
    print(f"{len(failed)} of {len(checked)} checks failed; ran in {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
