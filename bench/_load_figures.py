"""From one point's raw stamps to its figures.

Latency is matched burst by burst, per call, per direction: a burst found at the far end (arrival stamp,
code) is the latest burst of the same code its sender stamped at or before that arrival. Codes cycle
through four values 200 ms apart, so a match is unambiguous while the latency stays under 800 ms; beyond
that (`MAX_MATCH_MS`) the arrival counts as unmatched. Only bursts sent inside the window count.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench._load_point import PointResult
from bench._load_tones import FREQUENCIES

MAX_MATCH_MS = 200.0 * len(FREQUENCIES)
SATURATED = 0.85  # a process above this share of one core is saturated
LAGGING_MS = 20.0  # the simulator reading its sockets later than this (p99) is behind
LATE_TICK_MS = 20.0  # a caller frame this late is a generator behind real time...
LATE_TICK_SHARE = 0.01  # ...and more than this share of them is a generator that cannot keep up


@dataclass(frozen=True)
class Quantiles:
    """p50 / p99 / p99.9 and max of a sample, in ms (nearest rank)."""

    p50: float
    p99: float
    p999: float
    max: float
    count: int

    def text(self, digits: int = 2) -> str:
        values = " / ".join(f"{value:.{digits}f}" for value in (self.p50, self.p99, self.p999))
        return f"{values} (n={self.count})"


def quantiles(values: Sequence[float]) -> Quantiles | None:
    """Nearest-rank quantiles of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(quantile: float) -> float:
        return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]

    return Quantiles(rank(0.50), rank(0.99), rank(0.999), ordered[-1], len(ordered))


@dataclass(frozen=True)
class Matched:
    latencies: list[float]  # ms
    sent: int  # bursts sent in the window
    unmatched_arrivals: int


def match(
    sent: Sequence[tuple[float, int]], arrived: Sequence[tuple[float, int]], window: tuple[float, float]
) -> Matched:
    """Pair each arrival with the latest same-code burst sent at or before it (see the module doc)."""
    by_code: dict[int, list[float]] = {}
    for stamp, code in sent:
        by_code.setdefault(code, []).append(stamp)
    for stamps in by_code.values():
        stamps.sort()
    start, end = window
    latencies, unmatched = [], 0
    for stamp, code in arrived:
        stamps = by_code.get(code, [])
        position = bisect.bisect_right(stamps, stamp) - 1
        if position < 0:
            unmatched += 1
            continue
        sent_at = stamps[position]
        if not start <= sent_at < end:
            continue
        latency = (stamp - sent_at) * 1000
        if latency > MAX_MATCH_MS:
            unmatched += 1
        else:
            latencies.append(latency)
    in_window = sum(1 for stamp, _ in sent if start <= stamp < end)
    return Matched(latencies, in_window, unmatched)


@dataclass(frozen=True)
class Figures:
    """One column of the table."""

    calls: int
    inbound: Quantiles | None  # caller -> model, ms
    outbound: Quantiles | None  # model -> caller, ms
    inbound_lost: int  # caller bursts sent in the window never found at the model
    inbound_sent: int
    outbound_sent: int
    outbound_found: int
    cpu_per_call_second: float  # CPU s the peer spent per call-second
    peer_load: float  # share of one core
    memory_per_call: float  # bytes
    greeting: Quantiles | None  # probe calls, ms
    barge_in: Quantiles | None  # speech onset sent -> clear arrived, ms
    utterances: int
    errors: list[str]
    worker_load: float  # busiest load worker, share of one core
    model_load: float  # busiest simulator process, share of one core
    model_lag_p99: float  # ms between a message reaching the simulator's socket and its session
    late_tick_share: float  # caller frames sent over LATE_TICK_MS late, of all sent in the window
    others_load: float  # cores' worth used by processes outside this run

    @property
    def p99(self) -> float | None:
        """The worse direction's p99 (None when a direction saw nothing)."""
        if self.inbound is None or self.outbound is None:
            return None
        return max(self.inbound.p99, self.outbound.p99)

    @property
    def instrument_saturated(self) -> bool:
        """The load generators or the simulator could not keep up: the figures are theirs, not the peer's."""
        return (
            self.worker_load > SATURATED
            or self.model_load > SATURATED
            or self.model_lag_p99 > LAGGING_MS
            or self.late_tick_share > LATE_TICK_SHARE
        )


def figures(result: PointResult) -> Figures:
    """Reduce a point to its figures."""
    window, seconds = result.window, result.seconds
    load_calls = [record for record in result.records if not record.probe]
    inbound: list[float] = []
    outbound: list[float] = []
    inbound_sent = inbound_found = outbound_sent = outbound_found = 0
    errors: list[str] = []
    for record in load_calls:
        trace = result.traces.get(record.session) if record.session is not None else None
        if record.error is not None or trace is None:
            errors.append(record.error or f"call {record.index}: no model session")
            continue
        going = match(record.sent, trace.received, window)
        inbound += going.latencies
        inbound_sent += going.sent
        inbound_found += len(going.latencies)
        coming = match(trace.sent, record.arrivals, window)
        outbound += coming.latencies
        outbound_sent += coming.sent
        outbound_found += len(coming.latencies)
        if record.closed_early:
            errors.append(f"call {record.index}: stream closed by the peer")
        if record.greeting_ms is None:
            errors.append(f"call {record.index}: never heard the agent")
    for record in result.records:
        if record.probe and record.error is not None:
            errors.append(f"probe {record.index}: {record.error}")
    errors += [f"simulator: {problem}" for problem in result.model_errors]
    errors += [f"peer log: {line}" for line in result.peer_errors]
    barge_ins = [
        (cleared - onset) * 1000
        for record in load_calls
        for onset, cleared in record.barge_ins
        if window[0] <= onset < window[1]
    ]
    utterances = sum(
        1 for record in load_calls for onset in record.utterances if window[0] <= onset < window[1]
    )
    greetings = [r.greeting_ms for r in result.records if r.probe and r.greeting_ms is not None]
    calls = result.plan.calls
    late = sum(
        1
        for record in load_calls
        for at, late_ms in record.late_ticks
        if late_ms > LATE_TICK_MS and window[0] <= at < window[1]
    )
    own_cpu = result.peer_cpu + sum(result.model_cpu) + sum(result.worker_cpu)
    return Figures(
        calls=calls,
        inbound=quantiles(inbound),
        outbound=quantiles(outbound),
        inbound_lost=max(0, inbound_sent - inbound_found),
        inbound_sent=inbound_sent,
        outbound_sent=outbound_sent,
        outbound_found=outbound_found,
        cpu_per_call_second=result.peer_cpu / (calls * seconds),
        peer_load=result.peer_cpu / seconds,
        memory_per_call=(result.rss_loaded - result.rss_idle) / calls,
        greeting=quantiles(greetings),
        barge_in=quantiles(barge_ins),
        utterances=utterances,
        errors=errors,
        worker_load=max(result.worker_cpu, default=0.0) / seconds,
        model_load=max(result.model_cpu, default=0.0) / seconds,
        model_lag_p99=result.model_lag_ms[0],
        late_tick_share=late / max(1.0, calls * seconds / 0.020),
        others_load=max(0.0, result.machine_cpu - own_cpu) / seconds,
    )


def holds(column: Figures, bar_ms: float) -> bool:
    """The point holds: both directions' p99 under the bar, no errors, no lost caller audio."""
    p99 = column.p99
    return p99 is not None and p99 < bar_ms and not column.errors and column.inbound_lost == 0
