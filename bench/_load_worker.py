"""A load-generator process: drives its share of the calls on its own event loop, reports their records.

The parent gives each worker the call numbers it owns. A worker sets its calls up one at a time (the dial
lock is shared by all workers, see bench._load_caller), says ("ramped",), waits for the measured window
(start, end) on its pipe, places its probe calls during the window (each one greeted under full load,
hung up once it heard the agent), hangs every call up after the window and sends ("records", [...]).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from bench._load_caller import LoadCall, Lock, Target, close_http_client

GRACE_SECONDS = 1.0  # after the window, so what was sent in it can still arrive
PROBE_LISTEN_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker drives."""

    target: Target
    indices: tuple[int, ...]  # global call numbers
    probe_indices: tuple[int, ...]  # numbers of its probe calls (placed during the window)


def run_worker(plan: WorkerPlan, lock: Lock, counter: Synchronized[int], pipe: Connection) -> None:
    """Process body."""
    import uvloop

    uvloop.run(_work(plan, lock, counter, pipe))


async def _receive(pipe: Connection) -> Any:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[Any] = loop.create_future()

    def on_ready() -> None:
        if not ready.done():
            ready.set_result(pipe.recv())

    loop.add_reader(pipe.fileno(), on_ready)
    try:
        return await ready
    finally:
        loop.remove_reader(pipe.fileno())
        # The loop made the pipe non-blocking; the records sent back later are larger than its buffer.
        os.set_blocking(pipe.fileno(), True)


async def _work(plan: WorkerPlan, lock: Lock, counter: Synchronized[int], pipe: Connection) -> None:
    calls: list[LoadCall] = []
    for index in plan.indices:
        call = LoadCall(index, plan.target)
        calls.append(call)
        await call.setup(lock, counter)
    pipe.send(("ramped",))
    _, window_start, window_end = await _receive(pipe)
    # A full collection over thousands of stamp tuples stalls this loop for tens of ms, which would read
    # as peer latency; nothing here makes reference cycles worth collecting during a window.
    gc.collect()
    gc.freeze()
    gc.disable()
    probes: list[LoadCall] = []
    span = window_end - window_start
    try:
        for number, index in enumerate(plan.probe_indices):
            at = window_start + span * (number + 1) / (len(plan.probe_indices) + 1)
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            probe = LoadCall(index, plan.target, probe=True)
            probes.append(probe)
            await _probe(probe, lock, counter)
        await asyncio.sleep(max(0.0, window_end + GRACE_SECONDS - time.perf_counter()))
    finally:
        gc.enable()
        await asyncio.gather(*(call.hang_up() for call in calls), return_exceptions=True)
        await close_http_client()
    pipe.send(("records", [call.record for call in calls + probes]))


async def _probe(probe: LoadCall, lock: Lock, counter: Synchronized[int]) -> None:
    await probe.setup(lock, counter)
    if probe.record.error is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.first_audio.wait(), PROBE_LISTEN_SECONDS)
        if probe.record.greeting_ms is None:
            probe.record.error = "probe: no greeting"
    await probe.hang_up()


def split(calls: int, workers: int, probes: int, target: Target) -> list[WorkerPlan]:
    """Share `calls` (and `probes` probe calls, numbered after them) round-robin over `workers`."""
    plans = []
    for worker in range(workers):
        indices = tuple(range(worker, calls, workers))
        probe_indices = tuple(range(calls + worker, calls + probes, workers))
        if indices or probe_indices:
            plans.append(WorkerPlan(target, indices, probe_indices))
    return plans
