"""Where a peer's CPU goes during a window: py-spy (the `bench` extra) sampling the peer process.

`py-spy record --format raw --nonblocking` writes one line per distinct stack, `frame;frame;... count`
(idle threads left out, so samples are time on CPU or runnable). `summarize` turns that into the functions
that cost the most on their own (self) and with what they call (inclusive), as shares of all samples.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLE_RATE = 250  # per second: 4 ms apart, coarse next to a 20 ms frame but cheap for the peer


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample `pid` for `seconds` into `out` (raw stacks); None when py-spy is not installed."""
    beside = Path(sys.executable).parent / "py-spy"  # the venv's, when run as .venv/bin/python
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        return None
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    command += ["--rate", str(SAMPLE_RATE), "--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame_name(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `module.py:function`, the line dropped so a function adds up."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{short}:{name}"


def summarize(raw: Path, top: int = 15) -> str:
    """The `top` functions by self and by inclusive samples, as text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return "  (no samples)"
    lines = [f"  {total} samples; self = on top of the stack, incl = anywhere in it"]
    lines += [f"  self {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    lines += [f"  incl {count / total:6.1%}  {name}" for name, count in inclusive.most_common(top)]
    return "\n".join(lines)
