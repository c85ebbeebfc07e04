"""``voice-agent call``: phone the relay as a simulated Twilio caller and report what the caller heard.

The caller dials the relay's webhook, opens the Media Stream, waits for the greeting to finish, then says
each ``--say`` line (offline speech) or presses each ``--press`` key in order, waiting for the agent's reply
after each. With ``--stay`` it then keeps the line open in silence until the relay ends the call. With
``--twilio-rest-port`` it also plays Twilio's REST API for the relay (``TWILIO_API_BASE_URL`` must point
there): what the relay asks (a transfer, a hang-up, a recording) is printed, and a redirect or completion
ends the caller's stream as Twilio would. It writes a stereo WAV (left: caller, right: what the caller
heard) and a transcript with the timing figures a caller feels, and names how the call ended.

`drive_call` is the engine; ``voice-agent demo`` uses it too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from websockets.exceptions import ConnectionClosed

from app.sim.call_watch import CallWatch
from app.sim.twilio_caller import CallerError, SimulatedCaller
from app.sim.twilio_rest import SimulatedTwilioRest

T = TypeVar("T")
Step = tuple[str, str]  # ("say", text) or ("press", digits)


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
        "--account-sid", default=None, help="Twilio account sid (default: $TWILIO_ACCOUNT_SID)"
    )
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
    parser.add_argument(
        "--stay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after the steps, stay on the line silently up to SECONDS until the relay ends the call",
    )
    parser.add_argument(
        "--twilio-rest-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve a simulated Twilio REST API on 127.0.0.1:PORT for the relay (its TWILIO_API_BASE_URL)",
    )
    parser.add_argument(
        "--max-call-seconds",
        type=float,
        default=None,
        help="the relay's MAX_CALL_SECONDS, to name a capped call (default: from the environment)",
    )
    parser.add_argument(
        "--idle-hangup-seconds",
        type=float,
        default=None,
        help="the relay's IDLE_HANGUP_SECONDS, to name an idle call (default: from the environment)",
    )
    parser.set_defaults(steps=[])


@dataclass(frozen=True)
class CallPlan:
    """What the simulated caller does, and how long it waits for the agent."""

    steps: Sequence[Step] = ()
    wait_greeting: float = 10.0
    reply_timeout: float = 15.0
    quiet: float = 0.8
    stay: float | None = None  # then stay silent up to this long, waiting for the relay to end the call
    hangup_after: float | None = None


@dataclass
class CallReport:
    """What happened on the call, on the caller's clock (seconds since the stream started)."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    greeting_ms: float | None = None
    reply_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    echo: Callable[[str], None] | None = None  # print each timeline line as it happens
    last_caller_activity: float | None = None  # perf_counter time the caller last spoke or pressed
    ending: str = ""  # how the stream ended
    ended_at: float | None = None
    stay_seconds: float | None = None  # how long the caller stayed before the call ended (or gave up)

    def note(self, at: float, text: str) -> None:
        self.lines.append((at, text))
        if self.echo is not None:
            self.echo(f"[{at:8.3f}] {text}")

    def timeline(self) -> list[str]:
        return [f"[{at:8.3f}] {text}" for at, text in sorted(self.lines, key=lambda line: line[0])]


async def run_call(args: argparse.Namespace) -> int:
    """Drive one simulated call as ``args`` say; returns the exit code (0 = the agent answered each turn)."""
    auth_token = args.auth_token or os.environ.get("TWILIO_AUTH_TOKEN")
    if not auth_token:
        print("voice-agent call: no auth token (use --auth-token or set TWILIO_AUTH_TOKEN)")
        return 1
    account_sid = args.account_sid or os.environ.get("TWILIO_ACCOUNT_SID")
    if args.twilio_rest_port is not None and not account_sid:
        print("voice-agent call: --twilio-rest-port needs the relay's account sid (--account-sid)")
        return 1
    caller = SimulatedCaller(
        relay_url=args.relay,
        public_base_url=args.public_base_url or args.relay,
        auth_token=auth_token,
        account_sid=account_sid,
        from_number=args.from_number,
        to_number=args.to_number,
        caller_state=args.caller_state or None,
    )
    plan = CallPlan(
        steps=list(args.steps),
        wait_greeting=args.wait_greeting,
        reply_timeout=args.reply_timeout,
        quiet=args.quiet,
        stay=args.stay,
        hangup_after=args.hangup_after,
    )
    report = CallReport(echo=print)
    async with contextlib.AsyncExitStack() as resources:
        rest = None
        if args.twilio_rest_port is not None:
            assert account_sid is not None
            rest = SimulatedTwilioRest(account_sid, auth_token, port=args.twilio_rest_port)
            try:
                await resources.enter_async_context(rest)
            except OSError as exc:
                print(f"voice-agent call: cannot serve the Twilio REST API on that port: {exc}")
                return 1
            print(f"Twilio REST API simulated at {rest.base_url} (the relay's TWILIO_API_BASE_URL)")
        print(f"call {caller.call_sid} to {args.relay}")
        async with caller:
            try:
                await caller.dial()
                await caller.connect()
            except CallerError as exc:
                print(f"voice-agent call: {exc}")
                return 1
            watch = await drive_call(caller, plan, report, rest)
    report.problems.extend(f"protocol violation: {v}" for v in caller.violations)
    if args.out:
        await asyncio.to_thread(caller.write_wav, args.out)
    limits = _relay_limits(args)
    outcome = watch.inferred_outcome(report, *limits)
    figures = call_figures(caller, report, watch, outcome)
    if args.transcript:
        header = f"call {caller.call_sid} to {args.relay}"
        text = "\n".join([header, *report.timeline(), "", "timing:", *figures]) + "\n"
        await asyncio.to_thread(Path(args.transcript).write_text, text, encoding="utf-8")
    print("\n".join(figures))
    return 1 if report.problems else 0


def _relay_limits(args: argparse.Namespace) -> tuple[float, float]:
    """MAX_CALL_SECONDS and IDLE_HANGUP_SECONDS as the relay sees them (same environment), unless given."""
    from app.settings import load_settings

    try:
        settings = load_settings()
        defaults = (settings.max_call_seconds, settings.idle_hangup_seconds)
    except Exception:  # an unusable environment only costs the naming of the outcome
        defaults = (600.0, 20.0)
    return (args.max_call_seconds or defaults[0], args.idle_hangup_seconds or defaults[1])


async def drive_call(
    caller: SimulatedCaller, plan: CallPlan, report: CallReport, rest: SimulatedTwilioRest | None = None
) -> CallWatch:
    """Talk through ``plan`` on a connected caller, stay if asked, and hang up if the relay has not.

    With ``rest``, the caller is linked to it (a redirect or completion ends the stream) and every request
    the relay makes is noted on the timeline. Returns the watch that knows how the call ended.
    """
    watch = CallWatch(caller, rest, lambda at, text: report.note(_since(caller, at), text))
    report.last_caller_activity = _origin(caller)
    async with watch.following():
        why = ""
        try:
            async with asyncio.timeout(plan.hangup_after):
                await _converse(caller, plan, report, watch)
                if plan.stay is not None:
                    await _stay(caller, plan.stay, plan.quiet, report, watch)
                    why = f" (still on the line after the {plan.stay:g} s stay)"
        except TimeoutError:
            why = f" after {plan.hangup_after:g} s (--hangup-after)"
        report.ended_at = watch.ended_at or time.perf_counter()
        if watch.ended:
            report.ending = watch.ending()
        else:
            report.ending = f"caller hangs up{why}"
            await caller.hang_up()
        report.note(_since(caller, report.ended_at), report.ending)
    return watch


async def _unless_ended(watch: CallWatch, work: Coroutine[Any, Any, T]) -> T | None:
    """Await ``work``, or give up with None as soon as the stream ended either way."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            if watch.ended:
                return None
            await asyncio.wait({task}, timeout=0.02)
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _converse(caller: SimulatedCaller, plan: CallPlan, report: CallReport, watch: CallWatch) -> None:
    report.note(0.0, "stream started")
    try:
        first_audio = await _unless_ended(watch, caller.wait_agent_audio(timeout=plan.wait_greeting))
    except (TimeoutError, CallerError):
        first_audio = None
    if first_audio is None:
        report.problems.append(f"no agent audio within {plan.wait_greeting:g} s of the stream start")
        return
    report.greeting_ms = (first_audio - _origin(caller)) * 1000
    report.note(_since(caller, first_audio), f"agent starts speaking ({report.greeting_ms:.0f} ms)")
    await _agent_turn_ends(caller, plan, report, watch)
    for kind, value in plan.steps:
        if watch.ended:
            report.problems.append("the call ended before the caller was done")
            return
        if kind == "say":
            await caller.say_text(value)
            said_at = await _unless_ended(watch, caller.wait_said())
            if said_at is None:
                continue
            ended_at = said_at
            report.note(_since(caller, caller.spoken[-1].started_at), f'caller: "{value}"')
        else:
            for index, digit in enumerate(value):
                if index:
                    await asyncio.sleep(0.1)  # a human's pace between keys
                ended_at = time.perf_counter()
                with contextlib.suppress(ConnectionClosed):  # the call may end between two keys
                    await caller.press(digit)
            report.note(_since(caller, ended_at), f"caller presses {value}")
        report.last_caller_activity = ended_at
        try:
            reply = caller.wait_agent_audio(timeout=plan.reply_timeout, since=ended_at)
            reply_at = await _unless_ended(watch, reply)
        except (TimeoutError, CallerError):
            reply_at = None
        if reply_at is None:
            if kind == "say" and not watch.ended:
                report.problems.append(f"no agent reply within {plan.reply_timeout:g} s of a caller line")
            continue
        report.reply_ms.append((reply_at - ended_at) * 1000)
        report.note(_since(caller, reply_at), f"agent replies after {report.reply_ms[-1]:.0f} ms")
        await _agent_turn_ends(caller, plan, report, watch)


async def _agent_turn_ends(
    caller: SimulatedCaller, plan: CallPlan, report: CallReport, watch: CallWatch
) -> None:
    try:
        await _unless_ended(
            watch, caller.wait_agent_silent(quiet=plan.quiet, timeout=max(plan.reply_timeout, 60.0))
        )
    except TimeoutError:
        report.problems.append("the agent never went quiet")


async def _stay(
    caller: SimulatedCaller, seconds: float, quiet: float, report: CallReport, watch: CallWatch
) -> None:
    """Keep the line open in silence, noting each time the agent starts speaking, until the call ends."""
    started = time.perf_counter()
    if watch.ended:
        return  # ended during the steps (a transfer on a key press, say): there is nothing to wait for
    report.note(_since(caller, started), f"caller stays on the line in silence (up to {seconds:g} s)")
    seen = len(caller.media_arrivals)
    last_audio = caller.media_arrivals[-1][0] if caller.media_arrivals else started
    while not watch.ended and time.perf_counter() - started < seconds:
        await asyncio.sleep(0.02)
        for arrival, _ in caller.media_arrivals[seen:]:
            if arrival - last_audio >= quiet:
                report.note(_since(caller, arrival), "agent speaks up")
            last_audio = arrival
        seen = len(caller.media_arrivals)
    report.stay_seconds = (watch.ended_at or time.perf_counter()) - started


def _origin(caller: SimulatedCaller) -> float:
    return caller.start_sent_at or caller.connected_at or 0.0


def _since(caller: SimulatedCaller, at: float) -> float:
    return at - _origin(caller)


def _now(caller: SimulatedCaller) -> float:
    return _since(caller, time.perf_counter())


def call_figures(caller: SimulatedCaller, report: CallReport, watch: CallWatch, outcome: str) -> list[str]:
    """The summary block: latencies, what the relay asked of Twilio, how the call ended, and the outcome."""
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
    if watch.rest is not None:
        asked = [f"  relay asked Twilio: {ask.summary}" for ask in watch.asks]
        out += asked or ["  relay asked Twilio: nothing"]
    ended = report.ending
    if report.stay_seconds is not None:
        ended += f" ({report.stay_seconds:.2f} s into the stay)"
    if report.ended_at is not None:
        ended += f", {_since(caller, report.ended_at):.2f} s after the stream started"
    out.append(f"  ended: {ended}")
    out.append(f"  outcome: {outcome}")
    out += [f"  PROBLEM: {problem}" for problem in report.problems] or ["  result: ok"]
    return out
