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


def _frame_name(frame: str) -> tuple[str, str]:
    """`function (pkg/module.py:123)` -> (`pkg/module.py:function`, area), the line dropped to add up.

    The area is the top-level package (`websockets`, `asyncio`, `json`, ...) or, for this project's own
    code, `app/<room>`.
    """
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    area = "/".join(parts[:2]) if parts[0] == "app" and len(parts) > 2 else parts[0]
    return f"{path}:{name}", area.removesuffix(".py")


def summarize(raw: Path, top: int = 12) -> str:
    """Self time by function and by area, and this project's functions by inclusive time, as text."""
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    ours: Counter[str] = Counter()
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
        own[frames[-1][0]] += count
        areas[frames[-1][1]] += count
        for name in {name for name, area in frames if area.startswith("app/")}:
            ours[name] += count
    if total == 0:
        return "  (no samples)"
    lines = [f"  {total} samples ({SAMPLE_RATE}/s); self = on top of the stack, incl = anywhere in it"]
    lines += [f"  self {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    lines += [f"  self {count / total:6.1%}  area {name}" for name, count in areas.most_common(top)]
    lines += [f"  incl {count / total:6.1%}  {name}" for name, count in ours.most_common(top)]
    return "\n".join(lines)
