"""``voice-agent call``: phone the relay as a simulated Twilio caller and report what the caller heard.

The caller dials the relay's webhook, opens the Media Stream, waits for the greeting to finish, then says
each ``--say`` line (offline speech) or presses each ``--press`` key in order, waiting for the agent's reply
after each. It writes a stereo WAV (left: caller, right: what the caller heard) and a transcript with the
timing figures a caller feels: time to first agent audio, and reply latency = end of the caller's speech to
the first agent audio after it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.sim.twilio_caller import CallerError, SimulatedCaller


class _StepAction(argparse.Action):
    """Collects --say and --press into one ordered list of (kind, value) steps."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        steps = list(getattr(namespace, self.dest, None) or [])
        steps.append((self.const, str(values)))
        setattr(namespace, self.dest, steps)


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``voice-agent call`` options to ``parser``."""
    parser.add_argument("--relay", default="http://127.0.0.1:8080", help="address the relay listens on")
    parser.add_argument(
        "--public-base-url",
        default=None,
        help="the relay's PUBLIC_BASE_URL, which signatures are computed over (default: --relay)",
    )
    parser.add_argument("--auth-token", default=None, help="Twilio auth token (default: $TWILIO_AUTH_TOKEN)")
    parser.add_argument(
        "--say", action=_StepAction, const="say", dest="steps", metavar="TEXT", help="a caller line (repeat)"
    )
    parser.add_argument(
        "--press", action=_StepAction, const="press", dest="steps", metavar="DIGITS", help="DTMF keys"
    )
    parser.add_argument("--from", dest="from_number", default="+14155550100", help="caller number")
    parser.add_argument("--to", dest="to_number", default="+14155550199", help="business number")
    parser.add_argument("--state", dest="caller_state", default="CA", help="caller's state (FromState)")
    parser.add_argument(
        "--wait-greeting", type=float, default=10.0, help="seconds to wait for the agent's first audio"
    )
    parser.add_argument("--reply-timeout", type=float, default=15.0, help="seconds to wait for each reply")
    parser.add_argument(
        "--quiet", type=float, default=0.8, help="seconds of agent silence that end the agent's turn"
    )
    parser.add_argument("--out", default=None, help="write a stereo WAV of the call here")
    parser.add_argument("--transcript", default=None, help="write the caller's lines and timings here")
    parser.add_argument("--hangup-after", type=float, default=None, help="hang up after this many seconds")
    parser.set_defaults(steps=[])


@dataclass
class CallReport:
    """What happened on the call, on the caller's clock (seconds since the stream started)."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    greeting_ms: float | None = None
    reply_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def note(self, at: float, text: str) -> None:
        self.lines.append((at, text))


async def run_call(args: argparse.Namespace) -> int:
    """Drive one simulated call as ``args`` say; returns the exit code (0 = the agent answered each turn)."""
    auth_token = args.auth_token or os.environ.get("TWILIO_AUTH_TOKEN")
    if not auth_token:
        print("voice-agent call: no auth token (use --auth-token or set TWILIO_AUTH_TOKEN)")
        return 1
    caller = SimulatedCaller(
        relay_url=args.relay,
        public_base_url=args.public_base_url or args.relay,
        auth_token=auth_token,
        from_number=args.from_number,
        to_number=args.to_number,
        caller_state=args.caller_state or None,
    )
    report = CallReport()
    async with caller:
        try:
            await caller.dial()
            await caller.connect()
        except CallerError as exc:
            print(f"voice-agent call: {exc}")
            return 1
        try:
            async with asyncio.timeout(args.hangup_after):
                await _converse(caller, args, report)
        except TimeoutError:
            report.note(_now(caller), f"caller hangs up after {args.hangup_after:g} s (--hangup-after)")
        if caller.closed_by_relay.is_set():
            report.note(_now(caller), f"relay ended the call (close code {caller.close_code})")
        else:
            report.note(_now(caller), "caller hangs up")
    report.problems.extend(f"protocol violation: {v}" for v in caller.violations)
    if args.out:
        await asyncio.to_thread(caller.write_wav, args.out)
    header = f"call {caller.call_sid} to {args.relay}"
    timeline = [f"[{at:8.3f}] {text}" for at, text in sorted(report.lines, key=lambda line: line[0])]
    figures = _figures(caller, report)
    if args.transcript:
        text = "\n".join([header, *timeline, "", "timing:", *figures]) + "\n"
        await asyncio.to_thread(Path(args.transcript).write_text, text, encoding="utf-8")
    print("\n".join([header, *figures]))
    return 1 if report.problems else 0


async def _converse(caller: SimulatedCaller, args: argparse.Namespace, report: CallReport) -> None:
    report.note(0.0, "stream started")
    try:
        first_audio = await caller.wait_agent_audio(timeout=args.wait_greeting)
    except (TimeoutError, CallerError):
        report.problems.append(f"no agent audio within {args.wait_greeting:g} s of the stream start")
        return
    report.greeting_ms = (first_audio - _origin(caller)) * 1000
    report.note(_since(caller, first_audio), f"agent starts speaking ({report.greeting_ms:.0f} ms)")
    await _agent_turn_ends(caller, args, report)
    for kind, value in args.steps:
        if caller.closed_by_relay.is_set():
            report.problems.append("the relay ended the call before the caller was done")
            return
        if kind == "say":
            await caller.say_text(value)
            ended_at = await caller.wait_said()
            report.note(_since(caller, caller.spoken[-1].started_at), f'caller: "{value}"')
        else:
            for index, digit in enumerate(value):
                if index:
                    await asyncio.sleep(0.1)  # a human's pace between keys
                ended_at = time.perf_counter()
                await caller.press(digit)
            report.note(_since(caller, ended_at), f"caller presses {value}")
        try:
            reply_at = await caller.wait_agent_audio(timeout=args.reply_timeout, since=ended_at)
        except (TimeoutError, CallerError):
            if kind == "say":
                report.problems.append(f"no agent reply within {args.reply_timeout:g} s of a caller line")
            continue
        report.reply_ms.append((reply_at - ended_at) * 1000)
        report.note(_since(caller, reply_at), f"agent replies after {report.reply_ms[-1]:.0f} ms")
        await _agent_turn_ends(caller, args, report)


async def _agent_turn_ends(caller: SimulatedCaller, args: argparse.Namespace, report: CallReport) -> None:
    try:
        await caller.wait_agent_silent(quiet=args.quiet, timeout=max(args.reply_timeout, 60.0))
    except TimeoutError:
        report.problems.append("the agent never went quiet")


def _origin(caller: SimulatedCaller) -> float:
    return caller.start_sent_at or caller.connected_at or 0.0


def _since(caller: SimulatedCaller, at: float) -> float:
    return at - _origin(caller)


def _now(caller: SimulatedCaller) -> float:
    return _since(caller, time.perf_counter())


def _figures(caller: SimulatedCaller, report: CallReport) -> list[str]:
    out: list[str] = []
    clears = ", ".join(f"{_since(caller, at):.3f}" for at in caller.clears) or "none"
    heard_s = sum(len(piece.audio) for piece in caller.played) / 8000
    greeting = f"{report.greeting_ms:.0f} ms" if report.greeting_ms is not None else "no agent audio"
    out.append(f"  start -> first agent audio: {greeting}")
    if report.reply_ms:
        replies = ", ".join(f"{ms:.0f}" for ms in report.reply_ms)
        median = statistics.median(report.reply_ms)
        out.append(
            f"  reply latency (end of caller speech -> agent audio): {replies} ms (median {median:.0f})"
        )
    out.append(f"  clears (barge-ins) at s: {clears}")
    out.append(
        f"  agent audio: received {caller.received_media_bytes / 8000:.2f} s, heard {heard_s:.2f} s;"
        f" marks echoed: {len(caller.marks_echoed)}"
    )
    out += [f"  PROBLEM: {problem}" for problem in report.problems] or ["  result: ok"]
    return out
