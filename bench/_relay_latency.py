"""Greeting and barge-in latency through the real relay (own process) and the full simulators.

Stamps come from three processes' perf_counter, which is CLOCK_MONOTONIC on Linux and so one clock:
- the simulated caller (`start` sent, media and `clear` arrival),
- the relay's `Call.timings` (read over the bench-only route of bench._relay_process),
- the Realtime simulator's socket: `SimSession.ws.send` is wrapped to stamp chosen event types just before
  they go on the wire (the simulator itself keeps no send times).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.sim.realtime_server import RealtimeSimulator, SimSession
from app.sim.twilio_caller import SimulatedCaller
from bench._relay_process import RelayProcess

LOUD = bytes([0x10, 0x90] * 1600)  # 0.4 s of loud mu-law: the simulator's server VAD hears speech


def stamp_sends(session: SimSession, kinds: tuple[str, ...]) -> dict[str, list[float]]:
    """Record when the simulator puts each event of `kinds` on the wire (perf_counter, before the send)."""
    stamps: dict[str, list[float]] = {kind: [] for kind in kinds}
    needles = {kind: f'"type": "{kind}"' for kind in kinds}
    original: Callable[..., Awaitable[None]] = session.ws.send

    async def send(message: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(message, str):
            for kind, needle in needles.items():
                if needle in message:
                    stamps[kind].append(time.perf_counter())
        await original(message, *args, **kwargs)

    setattr(session.ws, "send", send)  # noqa: B010 - an instance attribute shadowing the bound method
    return stamps


@dataclass(frozen=True)
class GreetingSample:
    """One call's greeting, in ms. `relay_share` = ingress of whichever of stream start and first model
    delta came last (the event that released the audio) + `hold` (audio and stream both there, not sent)."""

    first_frame: float  # caller sends `start` -> first greeting frame arrives at the caller
    start_ingress: float  # caller sends `start` -> relay attaches the stream (start parsed, token checked)
    delta_ingress: float  # simulator sends the first audio delta -> relay has parsed it
    hold: float  # max(stream attached, first delta parsed) -> relay sends the first media frame
    delivery: float  # relay sends the first media frame -> it arrives at the caller
    model_bound: bool  # the first delta came after the stream started (the model was the wait)

    @property
    def relay_share(self) -> float:
        return (self.delta_ingress if self.model_bound else self.start_ingress) + self.hold


async def greeting_samples(
    relay: RelayProcess, sim: RealtimeSimulator, http: httpx.AsyncClient, *, gap: float, calls: int
) -> list[GreetingSample]:
    """`calls` calls, one at a time, whose stream opens `gap` s after the webhook was answered."""
    samples = []
    for _ in range(calls):
        samples.append(await _one_greeting(relay, sim, http, gap))
        await asyncio.sleep(0.1)  # let the relay finish the call before the next one rings
    return samples


async def _one_greeting(
    relay: RelayProcess, sim: RealtimeSimulator, http: httpx.AsyncClient, gap: float
) -> GreetingSample:
    caller = relay.caller()
    async with caller:
        index = len(sim.sessions)
        await caller.dial()
        answered = time.perf_counter()
        session = await sim.wait_for_session(index, timeout=5)
        stamps = stamp_sends(session, ("response.output_audio.delta",))
        await asyncio.sleep(max(0.0, answered + gap - time.perf_counter()))
        await caller.connect(send_start=False)
        start_sent = time.perf_counter()
        await caller.send_start()
        first_frame_at = await caller.wait_agent_audio(timeout=5)
        timings = await relay.timings(http, caller.call_sid)
    stream_started = _stamp(timings, "stream_started_at")
    first_delta = _stamp(timings, "first_delta_at")
    first_sent = _stamp(timings, "first_audio_sent_at")
    return GreetingSample(
        first_frame=_ms(first_frame_at - start_sent),
        start_ingress=_ms(stream_started - start_sent),
        delta_ingress=_ms(first_delta - stamps["response.output_audio.delta"][0]),
        hold=_ms(first_sent - max(stream_started, first_delta)),
        delivery=_ms(first_frame_at - first_sent),
        model_bound=first_delta > stream_started,
    )


@dataclass(frozen=True)
class BargeInSample:
    """One barge-in, in ms."""

    end_to_end: float  # simulator sends speech_started -> `clear` arrives at the caller
    handler: float  # relay: barge-in handler entry -> `clear` sent (Call.timings.last_barge_in_ms)


async def barge_in_samples(
    relay: RelayProcess, sim: RealtimeSimulator, http: httpx.AsyncClient, *, count: int
) -> list[BargeInSample]:
    """One call; the caller talks over the agent `count` times, each time 0.6 s into a reply."""
    samples = []
    caller = relay.caller()
    async with caller:
        index = len(sim.sessions)
        await caller.dial()
        session = await sim.wait_for_session(index, timeout=5)
        stamps = stamp_sends(session, ("input_audio_buffer.speech_started",))
        await caller.connect()
        said_at: float | None = None
        for _ in range(count):
            await caller.wait_agent_audio(timeout=10, since=said_at)
            await asyncio.sleep(0.6)
            samples.append(
                await _one_barge_in(relay, caller, http, stamps["input_audio_buffer.speech_started"])
            )
            said_at = await caller.wait_said(timeout=5)
    return samples


async def _one_barge_in(
    relay: RelayProcess, caller: SimulatedCaller, http: httpx.AsyncClient, speech_started: list[float]
) -> BargeInSample:
    clears_before, started_before = len(caller.clears), len(speech_started)
    caller.say(LOUD)
    async with asyncio.timeout(5):
        # Both lists are appended by other code with no event to wait on; 5 ms polling is only the wait,
        # never part of a figure (the figures are stamps taken where things happen).
        while len(caller.clears) <= clears_before or len(speech_started) <= started_before:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    timings = await relay.timings(http, caller.call_sid)
    return BargeInSample(
        end_to_end=_ms(caller.clears[clears_before] - speech_started[started_before]),
        handler=_stamp(timings, "last_barge_in_ms"),
    )


def _stamp(timings: dict[str, float | None], name: str) -> float:
    value = timings.get(name)
    if value is None:
        raise RuntimeError(f"the relay recorded no {name}")
    return float(value)


def _ms(seconds: float) -> float:
    return seconds * 1000
