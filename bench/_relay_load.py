"""Steady-state load: N concurrent calls, audio both ways in real time, the relay's CPU per frame relayed.

The relay runs in its own process (bench._relay_process); the lean peers (bench._relay_load_peers) run in
this one. A window is measured once every call hears agent audio: the relay's and this process's CPU time
(utime + stime from /proc), the frames relayed each way, and per-frame one-way latency. A second window
with the model silent (its replies keep their clock but send nothing) prices the caller->model direction
alone, and one with the callers silent (still echoing marks) prices the model->caller direction alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from dataclasses import dataclass

import httpx

from bench._relay_load_peers import FRAME_SECONDS, LoadCaller, LoadModel
from bench._relay_process import RelayProcess, cpu_seconds, machine_busy_seconds
from bench._relay_stats import Spread, spread

SETUP_CONCURRENCY = 10  # calls dialled at once while ramping up
LATE_GRACE_SECONDS = 1.0  # a frame not at the far end this long after the window is counted lost


@dataclass(frozen=True)
class Window:
    """What one measured window saw."""

    seconds: float
    relay_cpu: float  # s of CPU the relay process used
    bench_cpu: float  # s of CPU this process (callers + model) used
    machine_cpu: float  # s of CPU all processes used, on all cores
    inbound_frames: int  # caller -> model frames that reached the model in the window
    outbound_frames: int  # model -> caller 20 ms frames that reached the callers in the window
    inbound_sent: int  # caller frames sent in the window
    inbound_late: int  # ...of which had not reached the model a second after the window
    inbound_latency: Spread | None  # ms, caller send -> model receive
    outbound_latency: Spread | None  # ms, model send -> caller receive

    @property
    def frames(self) -> int:
        return self.inbound_frames + self.outbound_frames

    @property
    def relay_us_per_frame(self) -> float:
        return self.relay_cpu / max(1, self.frames) * 1e6

    @property
    def relay_load(self) -> float:
        """Fraction of one core the relay used (it is one event loop: 1.0 is its ceiling)."""
        return self.relay_cpu / self.seconds

    @property
    def bench_load(self) -> float:
        return self.bench_cpu / self.seconds

    @property
    def others_load(self) -> float:
        """Cores' worth of CPU used by processes other than the relay and this one (other work on the box)."""
        return max(0.0, self.machine_cpu - self.relay_cpu - self.bench_cpu) / self.seconds


@dataclass(frozen=True)
class LoadResult:
    calls: int
    both: Window  # model streaming and callers talking
    inbound_only: Window | None  # model silent
    outbound_only: Window | None  # callers silent, still echoing marks


async def run_load(
    relay: RelayProcess, model: LoadModel, http: httpx.AsyncClient, *, calls: int, window: float, split: bool
) -> LoadResult:
    """Ramp up `calls` calls, measure `window` s with audio both ways (then half as long each way alone)."""
    model.inbound_received.clear()
    model.outbound_sent.clear()
    model.streaming = True
    # The stamps pile up as hundreds of thousands of tuples; a full collection of them stalls this loop
    # for tens of ms and would show up as relay latency (p95 x10 measured). Nothing here makes cycles.
    gc.collect()
    gc.disable()
    callers = [LoadCaller(index, relay.caller()) for index in range(calls)]
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def start(caller: LoadCaller) -> None:
        async with gate:
            await caller.start()

    try:
        await asyncio.gather(*(start(caller) for caller in callers))
        async with asyncio.timeout(15):
            while not all(caller.arrivals for caller in callers):  # noqa: ASYNC110 - plain lists, no event
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # past the greeting's start-up, into steady state
        both = await _measure(relay, model, callers, window)
        inbound_only = outbound_only = None
        if split:
            model.streaming = False
            await asyncio.sleep(0.5)  # let frames in flight land
            inbound_only = await _measure(relay, model, callers, window / 2)
            model.streaming = True
            for caller in callers:
                caller.talking = False
            await asyncio.sleep(0.5)
            outbound_only = await _measure(relay, model, callers, window / 2)
    finally:
        gc.enable()
        await asyncio.gather(*(caller.hang_up() for caller in callers), return_exceptions=True)
        await _wait_calls_ended(relay, http)
    return LoadResult(calls, both, inbound_only, outbound_only)


async def _measure(relay: RelayProcess, model: LoadModel, callers: list[LoadCaller], window: float) -> Window:
    first_frame = [len(caller.sent_at) for caller in callers]
    relay_cpu, bench_cpu, machine_cpu = relay.cpu_seconds(), cpu_seconds(os.getpid()), machine_busy_seconds()
    started = time.perf_counter()
    await asyncio.sleep(window)
    ended = time.perf_counter()
    relay_cpu = relay.cpu_seconds() - relay_cpu
    bench_cpu = cpu_seconds(os.getpid()) - bench_cpu
    machine_cpu = machine_busy_seconds() - machine_cpu
    last_frame = [len(caller.sent_at) for caller in callers]
    await asyncio.sleep(LATE_GRACE_SECONDS)

    inbound_latency, late, sent = [], 0, 0
    for caller, first, last in zip(callers, first_frame, last_frame, strict=True):
        for frame in range(first, last):
            sent += 1
            received = model.inbound_received.get((caller.index, frame))
            if received is None:
                late += 1
            else:
                inbound_latency.append((received - caller.sent_at[frame]) * 1000)
    inbound_frames = sum(1 for at in model.inbound_received.values() if started <= at < ended)
    outbound_latency = [
        (arrived - model.outbound_sent[(session, delta)]) * 1000
        for caller in callers
        for arrived, session, delta in caller.arrivals
        if started <= arrived < ended
    ]
    return Window(
        seconds=ended - started,
        relay_cpu=relay_cpu,
        bench_cpu=bench_cpu,
        machine_cpu=machine_cpu,
        inbound_frames=inbound_frames,
        outbound_frames=len(outbound_latency) * model.delta_frames,
        inbound_sent=sent,
        inbound_late=late,
        inbound_latency=spread(inbound_latency),
        outbound_latency=spread(outbound_latency),
    )


async def _wait_calls_ended(relay: RelayProcess, http: httpx.AsyncClient) -> None:
    """Until the relay has ended every call; an overloaded relay may be seconds behind, even on /readyz."""
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(httpx.TransportError):
                ready = (await http.get(f"{relay.relay_url}/readyz")).json()
                if ready["live_calls"] == 0:
                    return
            await asyncio.sleep(0.1)


def expected_frames(calls: int, seconds: float) -> float:
    """Frames one direction carries in real time."""
    return calls * seconds / FRAME_SECONDS
