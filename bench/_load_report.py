"""The side-by-side table: one block of rows per N, one column per peer, then the largest N each holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bench._load_figures import (
    LAGGING_MS,
    LATE_TICK_MS,
    LATE_TICK_SHARE,
    SATURATED,
    Figures,
    Quantiles,
    holds,
)

LEGEND = """\
  in / out p50/p99/p999  added latency per frame, ms: caller->model (a caller burst's frame sent -> the
                         simulator has the append holding it) and model->caller (the delta opening a model
                         burst sent -> the media frame holding it at the caller); bursts found by energy,
                         told apart by frequency, so re-chunking does not matter
  lost caller audio      caller bursts sent in the window never found at the model
  CPU per call-second    peer process CPU (utime+stime, /proc) / (N x window); load = share of one core
  memory per call        peer RSS at the end of the window minus RSS before the first call, / N
  greeting               probe calls placed during the window: `start` sent -> first agent frame (the
                         simulator takes 300 ms to start speaking)
  barge-in               caller speech onset sent -> `clear` at the caller (the simulator's VAD needs 30 ms
                         of speech; the relay clears itself, Pipecat on the simulator's speech_started)
  instrument             busiest load worker / busiest simulator process, share of one core; caller
                         frames sent over {late_tick:.0f} ms late; p99 of how long the simulator's sessions
                         took to read what reached its sockets. * = a process over {saturated:.0%}, over
                         {late_share:.0%} of frames late, or a lag over {lagging:.0f} ms: the instrument could
                         not keep up, and the figures are its own, not the peer's
  others                 cores' worth of CPU used by processes outside this run (a busy box inflates tails)"""


def _quantiles(found: Quantiles | None) -> str:
    return found.text() if found is not None else "-"


def _spread(found: Quantiles | None) -> str:
    return f"{found.p50:.0f} / {found.max:.0f} (n={found.count})" if found is not None else "-"


def _errors(column: Figures) -> str:
    if not column.errors:
        return "none"
    return f"{len(column.errors)}: {column.errors[0][:60]}"


def _instrument(column: Figures) -> str:
    flag = " *" if column.instrument_saturated else ""
    return (
        f"{column.worker_load * 100:.0f}% / {column.model_load * 100:.0f}%, late frames "
        f"{column.late_tick_share:.1%}, model lag {column.model_lag_p99:.0f} ms{flag}"
    )


ROWS: list[tuple[str, Callable[[Figures], str]]] = [
    ("in p50/p99/p999 ms", lambda c: _quantiles(c.inbound)),
    ("out p50/p99/p999 ms", lambda c: _quantiles(c.outbound)),
    ("lost caller audio", lambda c: f"{c.inbound_lost} of {c.inbound_sent}"),
    (
        "CPU per call-second",
        lambda c: f"{c.cpu_per_call_second * 1000:.2f} ms (load {c.peer_load * 100:.0f}%)",
    ),
    ("memory per call", lambda c: f"{c.memory_per_call / 1024:.0f} KiB"),
    ("greeting p50/max ms", lambda c: _spread(c.greeting)),
    ("barge-in p50/max ms", lambda c: _spread(c.barge_in) + f" of {c.utterances} said"),
    ("errors", _errors),
    ("instrument worker/model", _instrument),
    ("others on the box", lambda c: f"{c.others_load:.2f} cores"),
]


def render_profile(title: str, columns: Mapping[str, Sequence[Figures]], bar_ms: float) -> str:
    """The table for one delta size."""
    peers = list(columns)
    counts = sorted({column.calls for found in columns.values() for column in found})
    by_peer = {peer: {column.calls: column for column in columns[peer]} for peer in peers}
    label_width = max(len(label) for label, _ in ROWS) + 8
    cells: list[list[str]] = []
    for count in counts:
        for number, (label, value) in enumerate(ROWS):
            row = [f"N={count:<4} {label}" if number == 0 else f"       {label}"]
            for peer in peers:
                column = by_peer[peer].get(count)
                row.append(value(column) if column is not None else "not run")
            cells.append(row)
        cells.append([""] * (len(peers) + 1))
    widths = [label_width] + [
        max([len(peer)] + [len(row[i + 1]) for row in cells]) for i, peer in enumerate(peers)
    ]
    lines = [title, "=" * len(title), _line(["", *peers], widths)]
    lines += [_line(row, widths) for row in cells]
    for peer in peers:
        held = [column.calls for column in columns[peer] if holds(column, bar_ms)]
        best = max(held, default=None)
        saturated = [column.calls for column in columns[peer] if column.instrument_saturated]
        note = (
            f" (instrument saturated at N={saturated[0]}: a quieter box, or more --workers/--model-procs)"
            if saturated
            else ""
        )
        text = f"N={best}" if best is not None else "no point measured held it"
        lines.append(f"largest N {peer} holds with p99 < {bar_ms:g} ms both ways and no errors: {text}{note}")
    lines.append("")
    lines.append(
        LEGEND.format(
            saturated=SATURATED, late_tick=LATE_TICK_MS, late_share=LATE_TICK_SHARE, lagging=LAGGING_MS
        )
    )
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
