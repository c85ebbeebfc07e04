"""`voice-agent demo` with a model that listens: the offline engine (default) or the real Realtime model.

The caller's lines (the default booking call, `--say` lines, or lines typed with `--interactive`) are
spoken by espeak-ng into the real relay over G.711; the model is the offline engine
(app/sim/engine: pocketsphinx, a dialogue policy, espeak-ng) or, with `--model openai`, OpenAI's Realtime
API. The live transcript shows what the model recognised, each tool call with its result, and what the
agent said; the WAV (left: caller, right: what the caller heard) and the transcript are written at the end,
and with the back office the stored outcome and summary are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from app.calls.events import (
    CallEnded,
    CallEvent,
    CallEventSink,
    CallNote,
    MemorySink,
    ToolInvocation,
    TranscriptTurn,
)
from app.demo_backoffice import BackOffice, FanOutSink
from app.settings import load_settings
from app.sim.call_command import CallPlan, CallReport, drive_call
from app.sim.harness import LocalStack, local_stack
from app.sim.twilio_caller import SimulatedCaller

DEFAULT_LINES = [
    "Hi, what are your opening hours today?",
    "Can I book a cleaning on Tuesday at ten? My name is Alex Morgan.",
    "Thanks, goodbye!",
]
HUMAN_NUMBER = "+15557654321"
CALLER_VOICE = "en-us+f2"  # of the two voices the evaluation uses, the one the engine hears best
END_EVENT_TIMEOUT = 10.0


class DemoSetupError(RuntimeError):
    """Something the demo needs is missing; the message says what and how to get it."""


class LiveTranscript:
    """Prints the conversation as the relay reports it: recognised caller words, tools, agent replies."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, event: CallEvent) -> None:
        line = _describe(event)
        if line is not None:
            self.lines.append(line)
            print(f"  {line}", flush=True)


def _describe(event: CallEvent) -> str | None:
    if isinstance(event, TranscriptTurn):
        who = "caller (recognised)" if event.speaker == "caller" else "agent"
        flag = "  [interrupted]" if event.interrupted else ""
        return f"{who}: {event.text}{flag}"
    if isinstance(event, ToolInvocation):
        arguments = ", ".join(f"{key}={value}" for key, value in event.arguments.items())
        return f"tool: {event.name}({arguments}) -> {_short(event.result)}"
    if isinstance(event, CallNote) and event.tag in ("message", "emergency", "transfer_started"):
        return f"note: {event.tag} {_short(event.detail)}".rstrip()
    return None


def _short(value: dict[str, Any]) -> str:
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _model_setup(model: str) -> tuple[dict[str, Any], Any]:
    """Settings overrides and the model server for `model` (engine or openai)."""
    if model == "openai":
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise DemoSetupError("--model openai needs OPENAI_API_KEY in the environment")
        return {"openai_api_key": key, "openai_base_url": os.environ.get("OPENAI_BASE_URL")}, None
    try:
        from app.sim.engine.server import engine_server
    except ImportError as missing:  # pragma: no cover - pocketsphinx is a dependency
        raise DemoSetupError(
            f"the offline engine needs pocketsphinx ({missing}); run scripts/bootstrap"
        ) from None
    return {}, engine_server()


async def run_engine_demo(
    *,
    out: str,
    transcript: str,
    lines: list[str] | None = None,
    interactive: bool = False,
    model: str = "engine",
    audio_format: str = "pcmu",
    backoffice: bool = False,
) -> int:
    """One demo call with a listening model; returns the process exit code."""
    try:
        overrides, server = _model_setup(model)
        if server is not None:
            print("Loading the offline engine (speech recognition and voice)...", flush=True)
            from app.sim.engine.server import warm_up

            await warm_up()
    except DemoSetupError as problem:
        print(f"voice-agent demo: {problem}")
        return 2
    except Exception as problem:  # a broken speech library: say so instead of a traceback
        print(f"voice-agent demo: the offline engine could not start: {problem!r}")
        return 2
    settings = load_settings()
    office = BackOffice(settings) if backoffice else None
    overrides.update({"realtime_audio_format": audio_format, "human_transfer_number": HUMAN_NUMBER})
    async with office or contextlib.nullcontext():
        return await _call(out, transcript, lines, interactive, server, overrides, office)


async def _call(
    out: str,
    transcript: str,
    lines: list[str] | None,
    interactive: bool,
    server: Any,
    overrides: dict[str, Any],
    office: BackOffice | None,
) -> int:
    memory, live = MemorySink(), LiveTranscript()
    sinks: list[CallEventSink] = [memory, live]
    if office is not None:
        sinks.append(office.outbox)
    print("Starting the relay, the model and a simulated caller...", flush=True)
    report = CallReport()
    async with local_stack(
        model=server, sink=FanOutSink(*sinks), settings_overrides=overrides, twilio_rest=True
    ) as stack:
        async with stack.caller(voice=CALLER_VOICE) as caller:
            await caller.dial()
            await caller.connect()
            print("The call is up (agent, caller and tools as they happen):", flush=True)
            if interactive:
                await _interactive(stack, caller, out)
            else:
                steps = [("say", line) for line in lines or DEFAULT_LINES]
                plan = CallPlan(steps=steps, wait_greeting=20, reply_timeout=25, quiet=1.5, stay=8)
                await drive_call(caller, plan, report, stack.rest)
        await asyncio.to_thread(caller.write_wav, out)
        end_reason = await _end_reason(memory)
    summary = [f"ended: {end_reason}"] + [f"PROBLEM: {problem}" for problem in report.problems]
    text = "\n".join([*live.lines, "", "timeline:", *report.timeline(), "", *summary]) + "\n"
    await asyncio.to_thread(Path(transcript).write_text, text, encoding="utf-8")
    print("\n".join(summary))
    problems = list(report.problems)
    if office is not None:
        stored = await office.wait_for_summary(caller.call_sid)
        if stored is None:
            problems.append(f"the worker stored no outcome and summary (see {office.worker_log})")
            print(f"PROBLEM: {problems[-1]}")
        else:
            print(f"back office (stored by the worker in {office.settings.database_url}):")
            print(f"  outcome: {stored[0]}")
            print(f"  summary: {stored[1]}")
    print(f"Wrote {out} (left: caller, right: what the caller heard) and {transcript}.")
    return 1 if problems else 0


async def _interactive(stack: LocalStack, caller: SimulatedCaller, out: str) -> None:
    """Type a line, hear (WAV) and read the reply; an empty line or end of input hangs up."""
    await caller.wait_agent_silent(quiet=1.5, timeout=30)
    while not caller.closed_by_relay.is_set():
        try:
            line = (await asyncio.to_thread(input, "you say> ")).strip()
        except EOFError:
            line = ""
        if not line or caller.closed_by_relay.is_set():
            break
        await caller.say_text(line)
        said_at = await caller.wait_said()
        with contextlib.suppress(TimeoutError):
            await caller.wait_agent_audio(timeout=25, since=said_at)
            await caller.wait_agent_silent(quiet=1.5, timeout=60)
        await asyncio.to_thread(caller.write_wav, out)
        print(f"  (the call so far is in {out})", flush=True)
    if not caller.closed_by_relay.is_set():
        await caller.hang_up()


async def _end_reason(sink: MemorySink) -> str:
    deadline = time.monotonic() + END_EVENT_TIMEOUT
    while time.monotonic() < deadline:
        ended = [event.end_reason for event in sink.events if isinstance(event, CallEnded)]
        if ended:
            return ended[-1]
        await asyncio.sleep(0.05)
    return "unknown (no call_ended event)"
