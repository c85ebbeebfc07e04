"""`voice-agent demo`: one whole call with no keys and no servers.

A simulated caller (espeak-ng voice) dials the real relay, which talks to the simulated Realtime server (also
an espeak-ng voice) and the built-in demo business backend: greeting, an hours question answered with the
`lookup_hours` tool, a booking with `book_appointment`, goodbye. Writes a stereo WAV of both sides and a
transcript, and prints the latency figures a caller would feel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from app.calls.events import MemorySink, ToolInvocation, TranscriptTurn
from app.calls.prompts import load_prompts
from app.settings import load_settings
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from app.sim.speech import synthesize


def _next_weekday_at_ten(zone: ZoneInfo) -> dt.datetime:
    day = dt.datetime.now(zone).date() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(10, 0), zone)


def demo_script(zone: ZoneInfo) -> tuple[list[str], list[SimTurn]]:
    """What the caller says, and what the simulated model does in reply."""
    slot = _next_weekday_at_ten(zone)
    day_name = slot.strftime("%A")
    caller_lines = [
        "Hi, what are your opening hours today?",
        f"Great. Can I book a cleaning on {day_name} at ten? My name is Alex Morgan.",
        "Perfect, thank you. Bye!",
    ]
    turns = [
        SimTurn(
            hears=caller_lines[0],
            say="Let me check that for you.",
            tool="lookup_hours",
            arguments={"date": "today"},
        ),
        SimTurn(say="We're open today until five in the afternoon."),
        SimTurn(
            hears=caller_lines[1],
            say="One moment while I book that.",
            tool="book_appointment",
            arguments={"name": "Alex Morgan", "service": "cleaning", "start": slot.isoformat()},
        ),
        SimTurn(say=f"You're all set, Alex: a cleaning on {day_name} at ten."),
        SimTurn(hears=caller_lines[2], say="Thanks for calling. Goodbye!"),
    ]
    return caller_lines, turns


async def run_demo(*, out: str, transcript: str, audio_format: str = "pcmu") -> int:
    """Run the demo call; returns a process exit code."""
    settings = load_settings()
    zone = ZoneInfo(settings.business_timezone)
    greeting = load_prompts(settings).greeting
    caller_lines, turns = demo_script(zone)
    sink = MemorySink()
    print("Starting the simulated Realtime server and the relay...")
    async with local_stack(
        script=turns,
        sink=sink,
        tts=lambda text: synthesize(text, rate=24000),
        settings_overrides={"realtime_audio_format": audio_format},
        sim_options={"greeting": greeting},
    ) as stack:
        caller = stack.caller()
        async with caller:
            await caller.dial()
            await caller.connect()
            assert caller.start_sent_at is not None
            first_audio = await caller.wait_agent_audio(timeout=10)
            print(f"  greeting: first audio {1000 * (first_audio - caller.start_sent_at):.0f} ms after start")
            await caller.wait_agent_silent(quiet=1.0, timeout=30)
            for line in caller_lines:
                print(f"  caller: {line}")
                await caller.say_text(line)
                said_at = await caller.wait_said(timeout=30)
                reply = await caller.wait_agent_audio(timeout=15, since=said_at)
                print(f"    agent answered {1000 * (reply - said_at):.0f} ms after the caller finished")
                await caller.wait_agent_silent(quiet=1.2, timeout=40)
            caller.write_wav(out)
        for call in list(stack.relay.calls.values()):
            await asyncio.wait_for(call.ended.wait(), timeout=5)
    lines = []
    for event in sink.events:
        if isinstance(event, TranscriptTurn):
            flag = "  [interrupted]" if event.interrupted else ""
            lines.append(f"{event.speaker:>6}: {event.text}{flag}")
        elif isinstance(event, ToolInvocation):
            lines.append(
                f"  tool: {event.name} -> {'ok' if event.ok else 'error'} ({event.latency_ms:.0f} ms)"
            )
    await asyncio.to_thread(Path(transcript).write_text, "\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"Wrote {out} (left: caller, right: what the caller heard) and {transcript}.")
    return 0
