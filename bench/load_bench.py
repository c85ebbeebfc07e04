"""Side-by-side load: the relay and a Pipecat peer carrying N calls each: ``python -m bench.load_bench``.

For every N, each peer gets fresh processes: the simulated Realtime server (own process), the peer (own
process), and load generators (one per ~75 calls) that place N concurrent calls through it on loopback:
real-time 20 ms caller frames with a marked tone burst every 200 ms, the model's replies in deltas of the
chosen size with a burst every 200 ms, marks echoed at playback pace, the caller talking every 3-6 s (a
barge-in when it lands on a reply), every third reply calling a tool. See docs/load-bench.md.

Prints one table per delta size with a column per peer, and the largest N each holds with p99 under the bar.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench._load_figures import Figures, figures, holds
from bench._load_model import ModelConfig
from bench._load_point import PointPlan, run_point
from bench._load_profile import summarize
from bench._load_report import render_profile

DEFAULT_CALLS = "1,25,50,100,150,200,300"
P99_BAR_MS = 5.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load_bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--calls", default=DEFAULT_CALLS, help=f"concurrent calls per point ({DEFAULT_CALLS})"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per point (default 20)")
    parser.add_argument("--peer", choices=("relay", "pipecat", "both"), default="both")
    parser.add_argument(
        "--delta-ms",
        default="20,100",
        help="model audio per delta, one table each (20 = one Twilio frame, the worst case; 100 or 200 = "
        "what the real service sends)",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="load generator processes (0: one per 75 calls)"
    )
    parser.add_argument("--model-procs", type=int, default=1, help="simulator processes sharing one port")
    parser.add_argument("--probes", type=int, default=3, help="greeting probe calls per point, under load")
    parser.add_argument("--bar-ms", type=float, default=P99_BAR_MS, help="the p99 added-latency bar")
    parser.add_argument(
        "--stop-after-fail", action="store_true", help="skip larger N once a peer fails the bar"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the peer to the first core and the simulator and load workers to the others",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample each peer with py-spy during each window; raw stacks and a summary go to this folder",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    peers = ("relay", "pipecat") if args.peer == "both" else (args.peer,)
    counts = [int(count) for count in args.calls.split(",") if count.strip()]
    deltas = [int(delta) for delta in args.delta_ms.split(",") if delta.strip()]
    for delta in deltas:
        if 200 % delta:
            raise SystemExit(f"--delta-ms {delta}: must divide the 200 ms burst period")
    started = time.perf_counter()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(
        f"load bench: {os.cpu_count()} cores, {args.seconds:.0f} s windows, peers {', '.join(peers)}",
        file=sys.stderr,
    )
    for delta in deltas:
        model = ModelConfig(delta_ms=delta)
        columns: dict[str, list[Figures]] = {peer: [] for peer in peers}
        failed: set[str] = set()
        for count in counts:
            for peer in peers:
                if peer in failed:
                    continue
                plan = PointPlan(
                    peer=peer,
                    calls=count,
                    seconds=args.seconds,
                    model=model,
                    workers=args.workers,
                    model_procs=args.model_procs,
                    probes=args.probes,
                    pin=args.pin,
                    profile=args.profile / f"{peer}-{delta}ms-{count}.txt" if args.profile else None,
                )
                print(f"  {delta} ms deltas: {peer} x {count} ...", file=sys.stderr, flush=True)
                try:
                    result = run_point(plan)
                    column = figures(result)
                except RuntimeError as failure:
                    print(f"  {peer} x {count} could not run: {failure}", file=sys.stderr)
                    failed.add(peer)
                    continue
                columns[peer].append(column)
                sent = ", ".join(f"{kind} {count}" for kind, count in sorted(result.client_events.items()))
                print(f"  {peer} sent the simulator: {sent}", file=sys.stderr, flush=True)
                if plan.profile is not None and plan.profile.exists():
                    print(f"  {peer} x {count}, where the CPU went:\n{summarize(plan.profile)}", flush=True)
                if args.stop_after_fail and not holds(column, args.bar_ms):
                    failed.add(peer)
        print(render_profile(f"{delta} ms model deltas, {args.seconds:.0f} s windows", columns, args.bar_ms))
        print()
    print(f"ran in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
