"""The two systems under test, each in its own OS process so /proc gives its own CPU time and memory.

- relay: the production app and server (`create_app` + `app.server.run_relay`, via bench._relay_process),
  its model client pointed at the simulator, idle and call-length limits pushed out of the bench's way,
  the admission limit lifted (the bench measures past it on purpose).
- pipecat: bench._pipecat_peer, pointed at the same simulator.

Each child's stderr goes to a file; lines with ERROR or a traceback count as errors of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench._load_caller import PUBLIC_BASE_URL, Target
from bench._relay_process import REPO_ROOT, _free_port

PEERS = ("relay", "pipecat")
START_TIMEOUT = 90.0  # imports are slow on a busy 2-core box
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class PeerProcess:
    """A running peer: where to call it, its pid, and its log."""

    target: Target
    pid: int
    log_path: Path

    def rss_bytes(self) -> int:
        """Resident memory of the peer process now."""
        return rss_bytes(self.pid)

    def log_errors(self) -> list[str]:
        """Lines of the peer's stderr that report an error."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if "ERROR" in line or line.startswith("Traceback")]


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid`, from /proc/<pid>/statm."""
    with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


def relay_overrides(model_base_url: str, auth_token: str) -> dict[str, object]:
    """Settings of the relay under test: production defaults except what would end or refuse calls."""
    return {
        "openai_api_key": "sk-sim",
        "openai_base_url": model_base_url,
        "twilio_auth_token": auth_token,
        "twilio_account_sid": None,  # no REST client: nothing may leave this machine
        "twilio_api_base_url": "http://127.0.0.1:9",
        "public_base_url": PUBLIC_BASE_URL,
        "business_api_base": None,
        "redis_url": None,
        "preopen_ttl_seconds": 60.0,
        "max_live_calls": 10_000,  # measured past the admission limit on purpose
        "idle_prompt_seconds": 3600.0,  # the callers' audio is silence between utterances
        "idle_hangup_seconds": 7200.0,
        "max_call_seconds": 7200.0,
        # Every simulated caller dials from one number: the per-caller limits would refuse all but two.
        "max_calls_per_caller": 100_000,
        "max_calls_per_caller_per_hour": 10_000_000,
    }


@contextlib.contextmanager
def peer_process(kind: str, model_base_url: str, model_port: int) -> Iterator[PeerProcess]:
    """Start peer `kind` against the simulator and stop it when the block exits."""
    port = _free_port()
    auth_token = secrets.token_hex(16)
    if kind == "relay":
        overrides = relay_overrides(model_base_url, auth_token)
        command = [
            "-m",
            "bench._relay_process",
            json.dumps(overrides),
            str(port),
            "production",
            "WARNING",
            "text",
        ]
    elif kind == "pipecat":
        command = ["-m", "bench._pipecat_peer", str(port), f"ws://127.0.0.1:{model_port}/v1/realtime"]
    else:
        raise ValueError(f"unknown peer {kind!r}")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    log_file = tempfile.NamedTemporaryFile(prefix=f"load-bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, *command], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, Path(log_file.name))
        yield PeerProcess(Target(kind, url, auth_token), process.pid, Path(log_file.name))
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
        Path(log_file.name).unlink(missing_ok=True)  # its errors were read inside the block


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=1.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"the peer exited with code {process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if http.get(f"{url}/healthz").status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"the peer at {url} did not come up in {START_TIMEOUT:.0f} s")
