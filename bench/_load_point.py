"""One measured point: N calls through one peer, everything in fresh processes, one bounded window.

Processes: the simulator (`model_procs` of them on one port), the peer, and `workers` load generators.
The parent ramps the calls up, lets them settle, then opens the window: it reads the CPU time of every
process and of the whole machine (/proc) at its start and end, the peer's resident memory before the
first call and at the end, and afterwards gathers the callers' records and the simulator's traces.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from bench._load_caller import CallRecord
from bench._load_model import ModelConfig, ModelProcesses, SessionTrace
from bench._load_peers import peer_process
from bench._load_profile import start_profiler
from bench._load_worker import run_worker, split
from bench._relay_process import cpu_seconds, machine_busy_seconds

SETTLE_SECONDS = 1.5  # after the last call is up, before the window opens
CALLS_PER_WORKER = 75  # a load worker past ~100 calls starts to lag on a busy core


@dataclass(frozen=True)
class PointPlan:
    """What to measure."""

    peer: str
    calls: int
    seconds: float
    model: ModelConfig
    workers: int = 0  # 0: one per CALLS_PER_WORKER calls
    model_procs: int = 1
    probes: int = 3
    profile: Path | None = None  # sample the peer with py-spy during the window, raw stacks here
    pin: bool = False  # the peer alone on core 0, the instrument on the other cores


@dataclass
class PointResult:
    """Everything a point saw; bench._load_figures turns it into figures."""

    plan: PointPlan
    window: tuple[float, float]
    records: list[CallRecord]
    traces: dict[int, SessionTrace]
    model_errors: list[str]
    client_events: dict[str, int]  # what the peer sent the simulator, by event type
    model_lag_ms: tuple[float, float]  # (p99, max): socket -> session in the simulator
    peer_errors: list[str]
    peer_cpu: float  # CPU seconds in the window
    model_cpu: list[float]  # per model process
    worker_cpu: list[float]  # per load worker
    machine_cpu: float  # all cores, all processes
    rss_idle: int  # peer bytes before the first call
    rss_loaded: int  # peer bytes at the end of the window
    ramp_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.window[1] - self.window[0]


def worker_count(plan: PointPlan) -> int:
    return plan.workers or max(1, math.ceil(plan.calls / CALLS_PER_WORKER))


def run_point(plan: PointPlan) -> PointResult:
    """Measure one point; raises only if a process could not start at all."""
    model = ModelProcesses(plan.model, plan.model_procs)
    model.start()
    try:
        with peer_process(plan.peer, model.base_url, model.port) as peer:
            context = model.context
            lock = context.Lock()
            rss_idle = peer.rss_bytes()
            children: list[tuple[BaseProcess, Connection]] = []
            for worker_plan in split(plan.calls, worker_count(plan), plan.probes, peer.target):
                ours, theirs = context.Pipe()
                process: BaseProcess = context.Process(
                    target=run_worker, args=(worker_plan, lock, model.counter, theirs), daemon=True
                )
                process.start()
                children.append((process, ours))
            try:
                ramp_started = time.perf_counter()
                for _, pipe in children:
                    # Worker imports plus one dial at a time: seconds each when the box is loaded.
                    _expect(pipe, "ramped", timeout=120 + plan.calls * 3.0)
                ramp_seconds = time.perf_counter() - ramp_started
                time.sleep(SETTLE_SECONDS)
                pids = {
                    "peer": [peer.pid],
                    "model": model.pids,
                    "workers": [p.pid for p, _ in children if p.pid is not None],
                }
                if plan.pin:
                    pin(pids)
                before = {name: [cpu_seconds(pid) for pid in group] for name, group in pids.items()}
                machine_before = machine_busy_seconds()
                window_start = time.perf_counter()
                window_end = window_start + plan.seconds
                for _, pipe in children:
                    pipe.send(("window", window_start, window_end))
                profiler = start_profiler(peer.pid, plan.seconds, plan.profile) if plan.profile else None
                time.sleep(max(0.0, window_end - time.perf_counter()))
                after = {name: [cpu_seconds(pid) for pid in group] for name, group in pids.items()}
                machine_cpu = machine_busy_seconds() - machine_before
                rss_loaded = peer.rss_bytes()
                if profiler is not None:
                    profiler.wait(60)
                records: list[CallRecord] = []
                for _, pipe in children:
                    records += _expect(pipe, "records", timeout=60)[1]
            finally:
                for process, _ in children:
                    process.join(30)
                    if process.is_alive():
                        process.kill()
                        process.join()
            model_report = model.collect((window_start, window_end))
            peer_errors = peer.log_errors()
    finally:
        model.stop()
    used = {name: [a - b for a, b in zip(after[name], before[name], strict=True)] for name in after}
    return PointResult(
        plan=plan,
        window=(window_start, window_end),
        records=records,
        traces=model_report.traces,
        model_errors=model_report.errors,
        client_events=dict(model_report.client_events),
        model_lag_ms=(model_report.lag_p99_ms, model_report.lag_max_ms),
        peer_errors=peer_errors,
        peer_cpu=used["peer"][0],
        model_cpu=used["model"],
        worker_cpu=used["workers"],
        machine_cpu=machine_cpu,
        rss_idle=rss_idle,
        rss_loaded=rss_loaded,
        ramp_seconds=ramp_seconds,
    )


def pin(pids: dict[str, list[int]]) -> None:
    """The peer on core 0 only and everything else off it: "calls per core" measured on one core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise RuntimeError("--pin needs at least two cores")
    for pid in pids["peer"]:
        os.sched_setaffinity(pid, {allowed[0]})
    for pid in pids["model"] + pids["workers"]:
        os.sched_setaffinity(pid, set(allowed[1:]))


def _expect(pipe: Connection, kind: str, *, timeout: float) -> Any:
    if not pipe.poll(timeout):
        raise RuntimeError(f"a load worker sent no {kind!r} within {timeout:.0f} s")
    message = pipe.recv()
    if message[0] != kind:
        raise RuntimeError(f"a load worker sent {message[0]!r}, expected {kind!r}")
    return message
