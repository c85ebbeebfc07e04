"""The real relay in its own OS process, so its CPU time can be read from /proc without the load's.

The child builds the production app (`create_app`) with its upstreams pointed at a simulator and serves it
with the production uvicorn settings (`app.server.run_relay`: uvloop, httptools, websockets). Two bench-only
routes are added to the child's app: `GET /bench/timings/{call_sid}`, returning the live call's
`Call.timings`, and `GET /bench/lag`, the event loop's worst lag since the last read (a 10 ms ticker started
by the first read); nothing in app/ changes. perf_counter is CLOCK_MONOTONIC on Linux, shared by every
process, so the child's stamps compare directly with the bench's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from app.sim.harness import PUBLIC_BASE_URL
from app.sim.twilio_caller import SimulatedCaller

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parent.parent


class NullSink:
    """Drops call events: the bench measures the relay, not the outbox."""

    def emit(self, event: object) -> None:
        pass


def _serve(overrides: dict[str, Any], port: int, loop: str, log_level: str, log_json: bool) -> None:
    """Child process body: the production app and server, plus the timings route.

    `loop="uvloop"` installs uvloop's policy first, so `run_relay`'s `asyncio.run` runs on uvloop: a
    what-if for the loop uvicorn would pick itself (production `run_relay` bypasses uvicorn's loop setup).
    """
    from fastapi.responses import JSONResponse

    from app.calls.relay import Relay
    from app.logs import configure_logging, settings_secrets
    from app.main import create_app
    from app.server import run_relay
    from app.settings import load_settings
    from app.sim.demo_business import demo_backend

    settings = load_settings(_env_file=None, **overrides)
    # WARNING by default: per-call info lines would interleave with the bench's table.
    configure_logging(log_level, json_lines=log_json, secrets=settings_secrets(settings))
    app = create_app(settings, sink=NullSink(), business=demo_backend)
    lag = LoopLag()

    async def timings(call_sid: str) -> JSONResponse:
        relay: Relay = app.state.relay
        call = relay.calls.get(call_sid)
        if call is None:
            return JSONResponse({}, status_code=404)
        return JSONResponse(asdict(call.timings))

    async def loop_lag() -> JSONResponse:
        return JSONResponse({"max_lag_ms": lag.read_ms()})

    app.add_api_route("/bench/timings/{call_sid}", timings, methods=["GET"])
    app.add_api_route("/bench/lag", loop_lag, methods=["GET"])
    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_relay(app, host="127.0.0.1", port=port, drain_seconds=0)


class LoopLag:
    """The child's event-loop lag: how late a 10 ms sleep wakes up, worst case since the last read."""

    TICK_SECONDS = 0.010

    def __init__(self) -> None:
        self._worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def read_ms(self) -> float:
        if self._task is None:
            self._task = asyncio.create_task(self._tick(), name="bench-loop-lag")
        worst, self._worst = self._worst, 0.0
        return round(worst * 1000, 2)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.TICK_SECONDS)
            self._worst = max(self._worst, loop.time() - before - self.TICK_SECONDS)


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid`, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy (not idle or waiting on I/O) since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass
class RelayProcess:
    """Handle to the relay child: its address, pid and the settings it signs with."""

    relay_url: str
    pid: int
    auth_token: str
    process: asyncio.subprocess.Process

    def caller(self) -> SimulatedCaller:
        """A simulated caller dialling this relay, signing as Twilio would."""
        return SimulatedCaller(
            relay_url=self.relay_url, public_base_url=PUBLIC_BASE_URL, auth_token=self.auth_token
        )

    def cpu_seconds(self) -> float:
        """CPU time the relay process has used so far."""
        return cpu_seconds(self.pid)

    async def timings(self, http: httpx.AsyncClient, call_sid: str) -> dict[str, float | None]:
        """`Call.timings` of a live call."""
        response = await http.get(f"{self.relay_url}/bench/timings/{call_sid}")
        response.raise_for_status()
        stamps: dict[str, float | None] = response.json()
        return stamps


@contextlib.asynccontextmanager
async def relay_process(
    openai_base_url: str,
    *,
    loop: str = "production",
    log_level: str = "WARNING",
    log_json: bool = False,
    log_path: Path | None = None,
    **settings_overrides: Any,
) -> AsyncIterator[RelayProcess]:
    """Run the relay in a child process pointed at `openai_base_url` until the block exits; its stderr (the
    logs) goes to `log_path` when given."""
    auth_token = secrets.token_hex(16)
    overrides: dict[str, Any] = {
        "openai_api_key": "sk-sim",
        "openai_base_url": openai_base_url,
        "twilio_auth_token": auth_token,
        "twilio_account_sid": None,  # no REST client: nothing may leave this machine
        "twilio_api_base_url": "http://127.0.0.1:9",
        "public_base_url": PUBLIC_BASE_URL,
        "business_api_base": None,
        "redis_url": None,
        "preopen_ttl_seconds": 30.0,
        "heartbeat_seconds": 5.0,
        "max_live_calls": 1000,  # the bench measures the process past the admission limit on purpose
        "max_calls_per_caller": 10_000,  # every simulated caller dials from the same number
        "max_calls_per_caller_per_hour": 1_000_000,
        **settings_overrides,
    }
    port = _free_port()
    root = REPO_ROOT
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    # A local file opened once before the child starts; the child writes it, this loop never does.
    log_file = open(log_path, "w", encoding="utf-8") if log_path is not None else None  # noqa: SIM115, ASYNC230
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._relay_process",
        json.dumps(overrides),
        str(port),
        loop,
        log_level,
        "json" if log_json else "text",
        cwd=root,
        env=env,
        stderr=log_file,
    )
    relay_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(relay_url, process)
        yield RelayProcess(relay_url, process.pid, auth_token, process)
    finally:
        if process.returncode is None:
            process.terminate()  # SIGTERM: with drain_seconds=0 the draining server exits at once
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if log_file is not None:
            log_file.close()


async def _wait_healthy(relay_url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as http, asyncio.timeout(30):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the relay process exited with code {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{relay_url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "json")
