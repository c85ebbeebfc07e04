"""`voice-agent demo`: one whole call with no keys and no servers.

A simulated caller (espeak-ng voice) dials the real relay, which talks to the simulated Realtime server (also
an espeak-ng voice), the built-in demo business backend and a simulated Twilio REST API. `--scenario` picks
the call (app/sim/demo_scenarios.py): the default booking (hours and a booking with tools, goodbye), a warm
transfer, an agent hang-up, an idle caller, or a capped call. Prints the timeline as it happens, what the
relay asked of Twilio and how the call ended (the relay's own end reason); writes a stereo WAV of both sides
and a transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from app.calls.events import CallEnded, MemorySink, ToolInvocation, TranscriptTurn
from app.calls.prompts import load_prompts
from app.demo_backoffice import BackOffice, FanOutSink
from app.settings import load_settings
from app.sim.call_command import CallPlan, CallReport, drive_call
from app.sim.call_watch import CallWatch
from app.sim.demo_profiles import PROFILES, DemoProfile
from app.sim.demo_scenarios import build_scenario
from app.sim.harness import LocalStack, local_stack
from app.sim.speech import synthesize
from app.sim.twilio_callbacks import call_status_form, post_signed
from app.sim.twilio_webhook import new_sid
from app.twilio.signature import sign
from app.twilio.twiml import CALL_STATUS_PATH, public_url

END_EVENT_TIMEOUT = 10.0


async def run_demo(
    *,
    out: str,
    transcript: str,
    audio_format: str = "pcmu",
    scenario: str = "booking",
    settings_overrides: dict[str, Any] | None = None,
    backoffice: bool = False,
    business: str = "dental",
) -> int:
    """Run one demo call; returns a process exit code (1 if the call did not end as the scenario means).

    With `backoffice`, the call's events also go through the real outbox, queue and a worker process on the
    configured (by default embedded) database, and the stored outcome and summary are printed. `business`
    picks the demo business (app/sim/demo_profiles.py), whose backend is served on a local port.
    """
    settings = load_settings()
    office = BackOffice(settings) if backoffice else None
    async with office or contextlib.nullcontext():
        profile = PROFILES[business]
        return await _run(out, transcript, audio_format, scenario, settings_overrides, office, profile)


async def _run(
    out: str,
    transcript: str,
    audio_format: str,
    scenario: str,
    settings_overrides: dict[str, Any] | None,
    office: BackOffice | None,
    profile: DemoProfile,
) -> int:
    settings = load_settings(**profile.settings())
    demo = build_scenario(scenario, ZoneInfo(profile.timezone), profile)
    greeting = load_prompts(settings).greeting
    sink = MemorySink()
    report = CallReport(echo=lambda line: print(f"  {line}"))
    plan = CallPlan(steps=demo.steps, wait_greeting=10, reply_timeout=15, quiet=1.2, stay=demo.stay)
    overrides = {"realtime_audio_format": audio_format, **demo.settings, **(settings_overrides or {})}
    print(f"Scenario {demo.name} at {profile.name} ({profile.kind}): {demo.about}.")
    print("Starting the simulated Realtime server, the simulated Twilio REST API and the relay...")
    async with local_stack(
        script=demo.turns,
        sink=FanOutSink(sink, office.outbox) if office else sink,
        tts=lambda text: synthesize(text, rate=24000),
        settings_overrides=overrides,
        sim_options={"greeting": greeting},
        twilio_rest=True,
        business=profile,
    ) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            watch = await drive_call(caller, plan, report, stack.rest)
        await asyncio.to_thread(caller.write_wav, out)
        whisper = await _whisper_heard(stack, watch, caller.call_sid)
        if whisper:  # the person took the call; once they hang up, Twilio reports the call completed
            await _call_completed(stack, caller.call_sid)
        end_reason = await _end_reason(sink)
    lines = _conversation(sink)
    asked = [f"relay asked Twilio: {ask.summary}" for ask in watch.asks] or ["relay asked Twilio: nothing"]
    if whisper:
        asked.append(f'the person who answers hears: "{whisper}"')
    outcome = f"outcome: {watch.outcome_for(end_reason)} (end reason from the relay's events: {end_reason})"
    summary = [*asked, f"ended: {report.ending}", outcome]
    problems = list(report.problems)
    if end_reason != demo.expected_end:
        problems.append(f"expected the call to end as {demo.expected_end!r}, it ended as {end_reason!r}")
    summary += [f"PROBLEM: {problem}" for problem in problems]
    text = "\n".join([*lines, "", "timeline:", *report.timeline(), "", *summary]) + "\n"
    await asyncio.to_thread(Path(transcript).write_text, text, encoding="utf-8")
    print("\n".join(lines))
    print("\n".join(summary))
    if office is not None:
        stored = await office.wait_for_summary(caller.call_sid)
        if stored is None:
            problems.append(f"the worker stored no outcome and summary (see {office.worker_log})")
            print(f"PROBLEM: {problems[-1]}")
        else:
            print(f"back office (stored by the worker in {settings.database_url}):")
            print(f"  outcome: {stored[0]}")
            print(f"  summary: {stored[1]}")
    print(f"Wrote {out} (left: caller, right: what the caller heard) and {transcript}.")
    return 1 if problems else 0


def _conversation(sink: MemorySink) -> list[str]:
    lines = []
    for event in sink.events:
        if isinstance(event, TranscriptTurn):
            flag = "  [interrupted]" if event.interrupted else ""
            lines.append(f"{event.speaker:>6}: {event.text}{flag}")
        elif isinstance(event, ToolInvocation):
            lines.append(
                f"  tool: {event.name} -> {'ok' if event.ok else 'error'} ({event.latency_ms:.0f} ms)"
            )
    return lines


async def _end_reason(sink: MemorySink) -> str:
    """The relay's end reason, once its `CallEnded` event is in (the relay ends the call after the stream)."""
    deadline = time.monotonic() + END_EVENT_TIMEOUT
    while time.monotonic() < deadline:
        ended = [event.end_reason for event in sink.events if isinstance(event, CallEnded)]
        if ended:
            return ended[-1]
        await asyncio.sleep(0.05)
    return "unknown (no call_ended event)"


async def _call_completed(stack: LocalStack, call_sid: str) -> None:
    """Twilio's final status callback for the call, which tells the back office the phone call is over."""
    settings = stack.settings
    await post_signed(
        public_url(settings, CALL_STATUS_PATH),
        call_status_form(call_sid, "completed", 60),
        auth_token=settings.auth_token(),
        public_base_url=settings.public_base_url or "",
        relay_url=stack.relay_url,
    )


async def _whisper_heard(stack: LocalStack, watch: CallWatch, call_sid: str) -> str | None:
    """After a warm transfer, ask the relay for the whisper as Twilio does when the person answers."""
    transfer = next((ask for ask in watch.asks if ask.whisper_url), None)
    if transfer is None or transfer.whisper_url is None:
        return None
    public = transfer.whisper_url
    account_sid = stack.settings.twilio_account_sid or ""
    form = {"CallSid": new_sid("CA"), "ParentCallSid": call_sid, "AccountSid": account_sid}
    signature = sign(stack.settings.auth_token(), public, form)
    local = public.replace(stack.settings.public_base_url or "", stack.relay_url, 1)
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        response = await client.post(local, data=form, headers={"X-Twilio-Signature": signature})
    if response.status_code != 200:
        return f"(the whisper request failed with HTTP {response.status_code})"
    say = ET.fromstring(response.text).find("Gather/Say")
    return (say.text or "").strip() if say is not None else None
