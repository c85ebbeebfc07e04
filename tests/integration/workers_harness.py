"""What the integration tests drive: private redis-servers, real worker and beat processes, local stand-ins
for the remote endpoints, a scripted call. The fixtures that build them live in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.calls.events import (
    CallEnded,
    CallEvent,
    CallHeartbeat,
    CallStarted,
    ConsentDecision,
    RecordingStarted,
    Speaker,
    ToolInvocation,
    TranscriptTurn,
)
from app.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
QUEUE = "voice_agent"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll until `predicate()`; returns the seconds it took, fails the test after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params).all())


class RedisServer:
    """A private redis-server that tests may stop and start again (its AOF keeps queued messages)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        wait_until(lambda: _pings(client), 10, "redis-server to start", interval=0.05)
        client.close()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None

    def client(self) -> redis.Redis[bytes]:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)

    def idle(self) -> bool:
        """No task waiting in the queue and none taken but unacknowledged."""
        client = self.client()
        try:
            return client.llen(QUEUE) == 0 and client.hlen("unacked") == 0
        finally:
            client.close()


def _pings(client: redis.Redis[bytes]) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoints:
    """Local HTTP stand-ins: `/v1/chat/completions` answers like the summary model, `/refuse/...` with 422,
    anything else 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    llm_stall_seconds: float = 0.0
    llm_stalls_left: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Forget what was received and any pending stall."""
        with self._lock:
            self.received.clear()
            self.llm_stalls_left = 0

    def stall_next_llm_request(self, seconds: float) -> None:
        with self._lock:
            self.llm_stall_seconds, self.llm_stalls_left = seconds, 1

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.path == path]

    def _answer(self, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.received.append(Received(path, headers, body))
            stall = (
                self.llm_stall_seconds if path.endswith("/chat/completions") and self.llm_stalls_left else 0.0
            )
            if stall:
                self.llm_stalls_left -= 1
        if stall:
            time.sleep(stall)
        if not path.endswith("/chat/completions"):
            return {"ok": True}
        prompt = json.loads(body)["messages"][-1]["content"]
        first_caller = next((line for line in prompt.splitlines() if line.startswith("Caller:")), "Caller: -")
        return {
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"Model summary. {first_caller}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


@contextlib.contextmanager
def serve_endpoints() -> Iterator[Endpoints]:
    """Serve an `Endpoints` stand-in on a free local port until the block ends."""
    stand_in = Endpoints()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            payload = json.dumps(stand_in._answer(self.path, body, dict(self.headers.items()))).encode()
            # Paths under /refuse/ stand for a receiver that rejects what it is sent.
            self.send_response(422 if self.path.startswith("/refuse/") else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()


class ServiceProcess:
    """A `python -m workers.cli ...` child in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *args],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and needle not in self.log():
                pytest.fail(f"{self.log_path.name} exited early:\n{self.log()[-3000:]}")
            return needle in self.log()

        wait_until(seen, timeout, f"'{needle}' in {self.log_path.name}")

    def pool_children(self) -> list[int]:
        """The prefork pool's child pids."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.proc.pid:
                    children.append(int(entry.name))
        return children

    def kill_all(self) -> None:
        """SIGKILL the whole process group: the machine died, nothing gets to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the main process only, as a supervisor sends it; then clear the group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.close_log()

    def close_log(self) -> None:
        self._log.close()


SETTING_NAMES = {name.upper() for name in Settings.model_fields}


class Services:
    """Starts workers and beats against one environment; stops whatever is left at teardown."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.started: list[ServiceProcess] = []

    def _start(self, name: str, args: list[str], overrides: dict[str, str]) -> ServiceProcess:
        env = self.env | overrides
        process = ServiceProcess(args, env, self.workdir, self.workdir / f"{name}.log")
        self.started.append(process)
        return process

    def worker(
        self,
        name: str,
        *,
        concurrency: int = 1,
        visibility_timeout: float = 900.0,
        env: dict[str, str] | None = None,
        metrics_port: int = 0,
    ) -> ServiceProcess:
        """A worker process; `metrics_port` 0 (the default) leaves its metrics listener off."""
        args = [
            "worker",
            "--name",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--visibility-timeout",
            str(visibility_timeout),
            "--loglevel",
            "INFO",
            "--metrics-port",
            str(metrics_port),
        ]
        process = self._start(name, args, env or {})
        process.wait_for_log(" ready.")
        return process

    def beat(
        self, name: str = "beat", *, env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()
    ) -> ServiceProcess:
        return self._start(name, ["beat", *extra_args], env or {})

    def stop_all(self) -> None:
        """Test cleanup: SIGKILL (a warm Celery shutdown takes ~5 s and proves nothing here)."""
        for process in self.started:
            process.kill_all()
            process.close_log()


def relay_settings(tmp_path: Path, pg_url: str, broker_url: str | None, **values: Any) -> Settings:
    """Settings for an OutboxSink in the test process (the relay's side)."""
    return load_settings(database_url=pg_url, redis_url=broker_url, data_dir=tmp_path / "relay", **values)


# --- a scripted call ---------------------------------------------------------------------------------------


def call_sid(n: int) -> str:
    return f"CA{n:032x}"


def scripted_call(
    sid: str, *, turns: int = 6, start: float | None = None, ended: bool = True
) -> list[CallEvent]:
    """A realistic call: consent notice, recording, alternating turns (one cut by barge-in), a booking,
    heartbeats, and (unless `ended=False`) the end."""
    t0 = start if start is not None else time.time()
    events: list[CallEvent] = [
        CallStarted(sid, "+15551230000", "+15559990000", "CA", "gpt-realtime-mini", t0),
        ConsentDecision(sid, "auto", "CA", True, "two-party consent state", notice_played_at=t0 + 0.5),
        RecordingStarted(sid, "RE" + sid[2:], t0 + 1.0),
    ]
    for seq in range(1, turns + 1):
        speaker: Speaker = "agent" if seq % 2 else "caller"
        text_ = f"{'Agent' if speaker == 'agent' else 'Caller'} line {seq} of {sid[-6:]}"
        events.append(
            TranscriptTurn(sid, seq, speaker, text_, t0 + 2 * seq, t0 + 2 * seq + 1.5, interrupted=seq == 3)
        )
        events.append(CallHeartbeat(sid, t0 + 2 * seq + 1.6))
        if seq == 4:
            events.append(
                ToolInvocation(
                    sid,
                    1,
                    "book_appointment",
                    {"name": "Ana", "service": "cleaning", "start": "2026-11-27T09:00:00-05:00"},
                    {"confirmation": "BK-1"},
                    True,
                    120.0,
                )
            )
    if ended:
        events.append(
            CallEnded(
                sid,
                t0 + 2 * turns + 3,
                "caller_hung_up",
                30.0,
                25.0,
                {"input_tokens": 900, "output_tokens": 700},
            )
        )
    return events
