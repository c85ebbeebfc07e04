"""The model side of the load bench: the full Realtime simulator in its own process(es), tapped.

`app.sim.realtime_server.RealtimeSimulator` runs unchanged (every event either way still validated against
the openai SDK's models, server VAD on the caller's audio, tool calls, cancels); this subclass only taps its
sockets:

- every reply is `reply_seconds` (the greeting 2 s, the line before a tool 1 s) of digital silence with a
  marked tone burst every `BURST_PERIOD_MS` (bench._load_tones), starting on a delta boundary; the tap
  stamps each delta that opens a burst just before it goes on the wire;
- the caller's appended audio is fed to a burst detector, stamped when the message came off the socket;
- each connection gets a global number from a counter shared with the load workers, which is how a worker
  learns which model session carries which of its calls (it dials under a shared lock and waits for the
  counter to move).

Several processes may serve one port (SO_REUSEPORT) so that the model side is not what saturates first.
The parent talks to each over a pipe: ("collect",) -> ("traces", {number: SessionTrace}, errors, event
counts by type).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import re
import time
from array import array
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import serve
from websockets.frames import DATA_OPCODES, Frame

from app.sim.realtime_audio import OUTPUT_RATE
from app.sim.realtime_server import MAX_EVENT_BYTES, RealtimeSimulator, SimSession, SimTurn
from bench._load_tones import FREQUENCIES, BurstDetector, burst

BURST_PERIOD_MS = 200  # one burst per 200 ms each way; a multiple of every delta size offered
_DELTA_NEEDLE = '"response.output_audio.delta"'
_APPEND_NEEDLE = '"input_audio_buffer.append"'
_ITEM_KEY = '"item_id": "'
_TYPE = re.compile(r'"type":\s*"([^"]+)"')  # the first is the event's own in every client event
RECORD_TRIM_SECONDS = 2.0


@dataclass(frozen=True)
class ModelConfig:
    """How the simulated model talks during the bench."""

    delta_ms: int = 20  # audio per output delta
    reply_seconds: float = 4.0  # every reply streams this much audio (unless interrupted)
    first_audio_delay: float = 0.3  # response.create -> first audio delta
    realtime_factor: float = 1.0  # deltas paced at real time


@dataclass
class SessionTrace:
    """What one model session saw: bursts it sent and bursts found in the caller's audio (perf_counter)."""

    sent: list[tuple[float, int]] = field(default_factory=list)  # (stamp before the send, code)
    received: list[tuple[float, int]] = field(default_factory=list)  # (arrival of the append, code)


@dataclass
class ModelReport:
    """What the simulator processes saw, merged."""

    traces: dict[int, SessionTrace] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    client_events: Counter[str] = field(default_factory=Counter)
    lag_p99_ms: float = 0.0  # messages off the socket -> read by their session (the simulator's own lag)
    lag_max_ms: float = 0.0


class Lag:
    """How long messages wait between the socket and their session: the simulator keeping up or not."""

    def __init__(self) -> None:
        self._arrived = array("d")
        self._waited = array("d")

    def record(self, arrived: float) -> None:
        self._arrived.append(arrived)
        self._waited.append(time.perf_counter() - arrived)

    def worst(self, start: float, end: float) -> tuple[float, float]:
        """(p99, max) in ms of the waits of messages that arrived in [start, end)."""
        waits = sorted(w for a, w in zip(self._arrived, self._waited, strict=True) if start <= a < end)
        if not waits:
            return 0.0, 0.0
        return waits[max(0, -(-99 * len(waits) // 100) - 1)] * 1000, waits[-1] * 1000


@cache
def reply_audio(seconds: float) -> npt.NDArray[np.int16]:
    """24 kHz reply audio: silence with a burst at every BURST_PERIOD_MS, codes cycling 0, 1, 2, 3."""
    samples = np.zeros(int(seconds * OUTPUT_RATE), dtype=np.int16)
    step = OUTPUT_RATE * BURST_PERIOD_MS // 1000
    for index, start in enumerate(range(0, len(samples), step)):
        tone = burst(OUTPUT_RATE, index % len(FREQUENCIES))[: len(samples) - start]
        samples[start : start + len(tone)] = tone
    return samples


TOOL_LINE = "Let me check that for you."
# Lines shorter than a reply: the tool line, so the call comes before the caller is likely to talk over it.
LINE_SECONDS = {TOOL_LINE: 1.0, "Thanks for calling.": 2.0}


def load_script(turns: int = 20_000) -> list[SimTurn]:
    """Shared by all sessions: plain replies, and every third one says a short line then calls a tool."""
    pattern = [
        SimTurn(say="Here is a long answer."),
        SimTurn(say=TOOL_LINE, tool="lookup_hours", arguments={"date": "today"}),
        SimTurn(say="Anything else I can do?"),
    ]
    return [pattern[index % len(pattern)] for index in range(turns)]


class _Tap:
    """Wraps one server connection: stamps outgoing burst deltas, detects bursts in appended audio."""

    def __init__(self, ws: Any, simulator: TracedSimulator, trace: SessionTrace) -> None:
        self._ws = ws
        self._simulator = simulator
        self._trace = trace
        self._item = ""
        self._delta_index = 0
        self._detector: BurstDetector | None = None
        self._session: SimSession | None = None
        # When each message's last frame came off the socket. The session reads messages later, after
        # validating and handling the ones before; stamping there would charge the simulator's own queue
        # to the peer. websockets calls process_event from data_received, once per frame, in order.
        self._frames_at: deque[float] = deque()
        process_event = ws.process_event

        def stamp_then_process(event: object) -> None:
            if isinstance(event, Frame) and event.fin and event.opcode in DATA_OPCODES:
                self._frames_at.append(time.perf_counter())
            process_event(event)

        ws.process_event = stamp_then_process

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def send(self, message: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(message, str) and _DELTA_NEEDLE in message:
            self._stamp_delta(message)
        await self._ws.send(message, *args, **kwargs)

    def _stamp_delta(self, message: str) -> None:
        start = message.find(_ITEM_KEY) + len(_ITEM_KEY)
        item = message[start : message.find('"', start)]
        if item != self._item:
            self._item, self._delta_index = item, 0
        position_ms = self._delta_index * self._simulator.config.delta_ms
        self._delta_index += 1
        if position_ms % BURST_PERIOD_MS == 0:
            code = position_ms // BURST_PERIOD_MS % len(FREQUENCIES)
            self._trace.sent.append((time.perf_counter(), code))

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for message in self._ws:
            arrived = self._frames_at.popleft() if self._frames_at else time.perf_counter()
            self._simulator.lag.record(arrived)
            if isinstance(message, str) and _APPEND_NEEDLE in message:
                self._on_append(message, arrived)
                self._simulator.client_events["input_audio_buffer.append"] += 1
            elif isinstance(message, str) and (kind := _TYPE.search(message)) is not None:
                self._simulator.client_events[kind.group(1)] += 1
            yield message

    def _on_append(self, message: str, arrived: float) -> None:
        try:
            data = base64.b64decode(json.loads(message)["audio"])
        except (ValueError, KeyError, TypeError):
            return  # the simulator itself answers a malformed append
        if self._session is None:
            me = cast(Any, self)
            self._session = next(s for s in reversed(self._simulator.sessions) if s.ws is me)
        kind = self._session.input.format.kind
        detector = self._detector
        if detector is None or detector.rate != (24_000 if kind == "audio/pcm" else 8_000):
            detector = self._detector = BurstDetector(24_000 if kind == "audio/pcm" else 8_000)
        before = len(detector.found)
        if kind == "audio/pcm":
            detector.feed_pcm16(data, arrived)
        else:
            detector.feed_mulaw(data, arrived)
        for found in detector.found[before:]:
            self._trace.received.append((found.arrived, found.code))


class TracedSimulator(RealtimeSimulator):
    """The Realtime simulator with tapped sockets, a shared session counter and SO_REUSEPORT."""

    def __init__(self, config: ModelConfig, counter: Synchronized[int], port: int) -> None:
        super().__init__(
            script=load_script(),
            greeting="Thanks for calling.",
            first_audio_delay=config.first_audio_delay,
            delta_ms=config.delta_ms,
            realtime_factor=config.realtime_factor,
            tts=lambda text: reply_audio(LINE_SECONDS.get(text, config.reply_seconds)),
            port=port,
        )
        self.config = config
        self.counter = counter
        self.traces: dict[int, SessionTrace] = {}
        self.client_events: Counter[str] = Counter()  # what the peer sent, by event type
        self.lag = Lag()

    async def start(self) -> None:
        """As the parent's, plus reuse_port so sibling processes can share the port."""
        self._server = await serve(
            self._serve_connection,
            self.host,
            self.port,
            process_request=self._check_upgrade,
            compression=None,
            max_size=MAX_EVENT_BYTES,
            reuse_port=True,
            # websockets stops reading a socket once 16 messages wait for the session; the peer's sends
            # would then wait on TCP and the simulator's own lag would read as the peer's latency.
            max_queue=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve_connection(self, ws: Any) -> None:
        with self.counter.get_lock():
            number = self.counter.value
            self.counter.value += 1
        trace = self.traces[number] = SessionTrace()
        # The session only calls what a ServerConnection offers, which _Tap forwards.
        await super()._serve_connection(cast(Any, _Tap(ws, self, trace)))

    def trim_records(self) -> None:
        """Drop the per-session event records tests assert on; nothing here reads them and they grow."""
        for session in self.sessions:
            session.received.clear()
            session.sent.clear()


def serve_model(config: ModelConfig, port: int, counter: Synchronized[int], pipe: Connection) -> None:
    """Process body: serve until the pipe says stop; answers ("collect",) with the traces."""
    import uvloop

    uvloop.run(_serve(config, port, counter, pipe))


async def _serve(config: ModelConfig, port: int, counter: Synchronized[int], pipe: Connection) -> None:
    simulator = TracedSimulator(config, counter, port)
    await simulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_command() -> None:
        command = pipe.recv()
        # The loop made the pipe non-blocking; the traces are larger than its buffer.
        os.set_blocking(pipe.fileno(), True)
        if command[0] == "collect":
            errors = list(simulator.validation_errors)
            lag = simulator.lag.worst(command[1], command[2])
            pipe.send(("traces", simulator.traces, errors, simulator.client_events, lag))
        else:
            stop.set()

    loop.add_reader(pipe.fileno(), on_command)
    pipe.send(("ready", simulator.port))
    while not stop.is_set():
        simulator.trim_records()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RECORD_TRIM_SECONDS)
    loop.remove_reader(pipe.fileno())
    await simulator.stop()


class ModelProcesses:
    """`count` simulator processes sharing one loopback port, and the counter that numbers sessions."""

    def __init__(self, config: ModelConfig, count: int) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.config = config
        self.count = count
        self.counter: Synchronized[int] = self.context.Value("q", 0)
        self.port = 0
        self._children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pids(self) -> list[int]:
        return [process.pid for process, _ in self._children if process.pid is not None]

    def start(self) -> None:
        for _ in range(self.count):
            ours, theirs = self.context.Pipe()
            process = self.context.Process(
                target=serve_model, args=(self.config, self.port, self.counter, theirs), daemon=True
            )
            process.start()
            if not ours.poll(60):
                raise RuntimeError("the model process did not start")
            _, self.port = ours.recv()
            self._children.append((process, ours))

    def collect(self, window: tuple[float, float]) -> ModelReport:
        """Traces, validation errors, client events by type and the worst lag, from all processes."""
        report = ModelReport()
        for _, pipe in self._children:
            pipe.send(("collect", *window))
            _, found, problems, seen, lag = _receive(pipe)
            report.traces.update(found)
            report.errors += problems
            report.client_events += seen
            report.lag_p99_ms = max(report.lag_p99_ms, lag[0])
            report.lag_max_ms = max(report.lag_max_ms, lag[1])
        return report

    def stop(self) -> None:
        for process, pipe in self._children:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        self._children.clear()


def _receive(pipe: Connection, timeout: float = 60.0) -> Any:
    if not pipe.poll(timeout):
        raise RuntimeError("the model process did not answer")
    return pipe.recv()
