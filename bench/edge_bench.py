"""The relay's public edge under attack, with a live call on it: ``python -m bench.edge_bench``.

The relay under test is the production app and server (`create_app` + `app.server.run_relay`) in its own
process on loopback, its model a Realtime simulator in this process streaming audio at twice real time. One
simulated caller stays on a live call the whole time, taking turns (speak, hear the reply) while each probe
runs. For every probe the table prints how many attempts it made, its outcome (every probe must end
"refused" or "survived"), the relay's peak memory (RSS) and worst event-loop lag during it, and the live
call's reply latency and worst audio gap meanwhile (a gap: the caller's playback ran dry inside a reply).

At the end: no call may be left running (the relay's live calls and every simulated model session), the
relay's own log (JSON, at DEBUG) must hold no secret or caller number, and the live call's audio gaps must
stay under 100 ms. Every probe is bounded in count and time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.sim.realtime_script import SimTurn
from app.sim.realtime_server import RealtimeSimulator
from app.sim.twilio_caller import SimulatedCaller
from bench._edge_probes import READ_TIMEOUT, START_TIMEOUT, Outcome
from bench._relay_process import REPO_ROOT, RelayProcess, relay_process, rss_bytes

LOUD = bytes([0x10, 0x90] * 1600)  # 0.4 s of loud mu-law: the simulator's server VAD hears speech
API_KEY = "sk-bench-" + os.urandom(12).hex()
HUMAN = "+15557654321"
GAP_BAR_MS = 100.0
# The model streams twice as fast as real time (the Realtime API also runs ahead of playback), so a gap is
# a stall longer than what the caller had buffered, as a caller would hear it.
REALTIME_FACTOR = 2.0
PROBE_SECONDS = 90.0


@dataclass
class Window:
    """What the live call and the relay went through while one probe ran."""

    latencies_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    peak_rss: int = 0
    loop_lag_ms: float = 0.0
    relay_cpu_ms: float = 0.0  # CPU the relay process spent during the probe (contention-free cost)


class LiveCall:
    """The caller who stays on the line: one turn after another while a probe runs."""

    def __init__(self, caller: SimulatedCaller) -> None:
        self.caller = caller

    async def answer(self) -> None:
        await self.caller.dial()
        await self.caller.connect()
        await self.caller.wait_agent_silent(quiet=0.3, timeout=15)

    async def turn(self, window: Window) -> None:
        caller = self.caller
        caller.say(LOUD)
        said = await caller.wait_said(timeout=10)
        first = await caller.wait_agent_audio(timeout=15, since=said)
        await caller.wait_agent_silent(quiet=0.3, timeout=30)
        window.latencies_ms.append((first - said) * 1000)
        reply = [piece for piece in caller.played if piece.started_at >= first - 0.001]
        for before, after in zip(reply, reply[1:], strict=False):
            window.gaps_ms.append(
                max(0.0, (after.started_at - before.started_at - len(before.audio) / 8000)) * 1000
            )

    async def turns_while(self, work: asyncio.Task[Outcome], window: Window) -> None:
        await self.turn(window)  # at least one turn under every probe
        while not work.done():
            await self.turn(window)


async def _sample_rss(pid: int, window: Window, stop: asyncio.Event) -> None:
    while not stop.is_set():
        window.peak_rss = max(window.peak_rss, rss_bytes(pid))
        await asyncio.sleep(0.05)


async def measured(
    relay: RelayProcess, http: httpx.AsyncClient, live: LiveCall, attack: Awaitable[Outcome] | None
) -> tuple[Outcome, Window]:
    """Run `attack` (None: a quiet baseline) while the live call talks; returns its outcome and window."""
    window = Window()
    await http.get(f"{relay.relay_url}/bench/lag")  # resets the worst lag
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(relay.pid, window, stop))
    cpu_before = relay.cpu_seconds()

    async def guarded() -> Outcome:
        if attack is None:
            return Outcome(0, "-")
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                return await attack
        except Exception as exc:  # a probe that breaks is reported, not raised: the table goes on
            return Outcome(0, f"FAILED: {type(exc).__name__}: {str(exc)[:80]}")

    work = asyncio.create_task(guarded())
    try:
        await live.turns_while(work, window)
        outcome = await work
    finally:
        stop.set()
        await sampler
    window.relay_cpu_ms = (relay.cpu_seconds() - cpu_before) * 1000
    window.loop_lag_ms = float((await http.get(f"{relay.relay_url}/bench/lag")).json()["max_lag_ms"])
    return outcome, window


PROBES = (  # (row label, probe name in bench._edge_probes.PROBES)
    ("unsigned webhooks", "unsigned_webhooks"),
    ("forged webhooks", "forged_webhooks"),
    ("oversized body, Content-Length 100 MB", "oversized_by_length"),
    ("oversized body, chunked 4 MB", "oversized_chunked"),
    ("percent-encoded floods (4 x 20 MB, 40 x 23 KB)", "percent_encoded_floods"),
    ("slowloris headers (1 byte / 0.5 s)", "slow_headers"),
    ("slowloris bodies (1 byte / 0.5 s)", "slow_bodies"),
    ("signed upgrade, no start", "upgrades_without_start"),
    ("second start on a bound stream", "second_starts"),
    ("start replayed after the call ended", "replayed_starts"),
    ("expired stream token", "expired_tokens"),
    ("malformed and oversized (200 KB) frames", "malformed_frames"),
    ("frame over the socket limit (1 MiB)", "frames_over_the_socket_limit"),
    ("malformed transfer parameters (signed)", "malformed_transfer_params"),
)


async def attack(relay: RelayProcess, name: str) -> Outcome:
    """Run probe `name` in its own process (its client work stays off the live call's event loop)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._edge_probes",
        name,
        relay.relay_url,
        relay.auth_token,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0:
        return Outcome(0, f"FAILED: the probe process exited with {child.returncode}")
    found = json.loads(out.decode().strip().splitlines()[-1])
    return Outcome(int(found["count"]), str(found["outcome"]))


def _row(name: str, outcome: Outcome, window: Window) -> list[str]:
    latency = (
        f"{statistics.median(window.latencies_ms):.0f}/{max(window.latencies_ms):.0f}"
        if window.latencies_ms
        else "-"
    )
    return [
        name,
        str(outcome.count) if outcome.count else "-",
        outcome.outcome,
        f"{window.peak_rss / 2**20:.0f}",
        f"{window.relay_cpu_ms:.0f}",
        f"{window.loop_lag_ms:.1f}",
        latency,
        f"{max(window.gaps_ms, default=0.0):.1f}",
    ]


def render(rows: Sequence[Sequence[str]]) -> str:
    header = [
        "probe",
        "count",
        "outcome",
        "RSS MiB",
        "CPU ms",
        "loop lag ms",
        "reply ms med/max",
        "gap ms max",
    ]
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def log_findings(log_path: Path, secrets: Sequence[str]) -> list[str]:
    """What is wrong with the relay's log: a secret or number printed, or a line that is not JSON."""
    text = log_path.read_text(encoding="utf-8")
    problems = [f"the relay logged {secret[:5]}..." for secret in secrets if secret and secret in text]
    for line in text.splitlines():
        if line.strip():
            try:
                json.loads(line)
            except ValueError:
                problems.append(f"a log line is not JSON: {line[:60]!r}")
                break
    return problems


async def leftovers(relay: RelayProcess, http: httpx.AsyncClient, sim: RealtimeSimulator) -> list[str]:
    """Calls still running once every caller is gone (pre-opened sessions get PREOPEN_TTL to expire)."""
    deadline = time.monotonic() + 10
    while True:
        live = int((await http.get(f"{relay.relay_url}/readyz")).json()["live_calls"])
        open_sessions = sum(1 for session in sim.sessions if not session.closed.is_set())
        if (live == 0 and open_sessions == 0) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    found = []
    if live:
        found.append(f"{live} call(s) still live in the relay")
    if open_sessions:
        found.append(f"{open_sessions} model session(s) still open")
    return found


async def run(log_path: Path) -> tuple[list[list[str]], list[str], int]:
    script = [SimTurn(audio_seconds=1.5) for _ in range(400)]
    sim = RealtimeSimulator(
        script=script, first_audio_delay=0.2, realtime_factor=REALTIME_FACTOR, api_key=API_KEY
    )
    await sim.start()
    overrides: dict[str, Any] = {
        "openai_api_key": API_KEY,
        "http_read_timeout_seconds": READ_TIMEOUT,
        "stream_start_timeout_seconds": START_TIMEOUT,
        "preopen_ttl_seconds": 3.0,
        "human_transfer_number": HUMAN,
    }
    rows: list[list[str]] = []
    problems: list[str] = []
    gaps: list[float] = []
    try:
        async with (
            relay_process(
                sim.base_url, log_level="DEBUG", log_json=True, log_path=log_path, **overrides
            ) as relay,
            httpx.AsyncClient(timeout=10, trust_env=False) as http,
        ):
            live = LiveCall(relay.caller())
            async with live.caller:
                await live.answer()
                outcome, window = await measured(relay, http, live, None)
                rows.append(_row("baseline: live call alone", outcome, window))
                gaps += window.gaps_ms
                for label, name in PROBES:
                    outcome, window = await measured(relay, http, live, attack(relay, name))
                    rows.append(_row(label, outcome, window))
                    gaps += window.gaps_ms
                    if not outcome.outcome.startswith(("refused", "survived")):
                        problems.append(f"{label}: {outcome.outcome}")
                if live.caller.closed_by_relay.is_set():
                    problems.append("the live call was closed by the relay")
                await live.caller.hang_up()
            problems += await leftovers(relay, http, sim)
            secrets = [
                API_KEY,
                relay.auth_token,
                live.caller.from_number[1:],
                live.caller.to_number[1:],
                HUMAN[1:],
            ]
        problems += log_findings(log_path, secrets)
        worst_gap = max(gaps, default=0.0)
        if worst_gap >= GAP_BAR_MS:
            problems.append(f"live call audio gap {worst_gap:.0f} ms (bar {GAP_BAR_MS:.0f} ms)")
        return rows, problems, len(sim.sessions)
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.edge_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, help="keep the relay's log here (default: a temporary file)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        log_path = args.log or Path(scratch) / "relay.log"
        rows, problems, sessions = asyncio.run(run(log_path))
    print(
        f"edge bench: {os.cpu_count()} cores; the relay on 127.0.0.1 in its own process, "
        f"its model simulated at {REALTIME_FACTOR:g}x real time"
    )
    print(f"HTTP read timeout {READ_TIMEOUT:g} s, stream start timeout {START_TIMEOUT:g} s for this run\n")
    print(render(rows) + "\n")
    print(
        "reply ms: end of the caller's speech -> first reply audio (includes the model's 500 ms end-of-turn\n"
        "silence and 200 ms first-audio delay);\n"
        "gap ms: the live caller's playback running dry inside a reply;\n"
        "CPU ms: the relay process's CPU time during the probe (the live call's included);\n"
        "loop lag: how late a 10 ms timer in the relay woke, worst case (on a busy machine this includes\n"
        "waiting for a core).\n"
        f"model sessions opened during the run: {sessions}\n"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    verdict = "FAIL" if problems else "PASS"
    print(
        f"{verdict}: no call left running, no secret or number logged, live call gaps < {GAP_BAR_MS:.0f} ms "
        f"({len(problems)} problem(s)); ran in {time.perf_counter() - started:.0f} s"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
