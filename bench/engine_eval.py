"""How well the offline engine understands callers: `python -m bench.engine_eval`.

Places simulated phone calls through the real relay over G.711 (pcmu), with the offline engine as the
model: every caller line of `_engine_cases` is spoken by each espeak-ng voice in `VOICES`, recognised by
the engine, and acted on by its policy. Prints, per line, what was recognised, the action taken, the
action expected and whether it was right; then the word error rate and the share of right actions (the
bar: at least 90%). Calls run on a few independent stacks (engine + relay) at once to bound the run time.

`--voices` and `--workers` change the voices and the parallelism; `--limit N` runs only the first N calls.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from app.logs import configure_logging
from app.sim.engine.brain import Decision, EngineBrain
from app.sim.engine.server import engine_server, warm_up
from app.sim.harness import LocalStack, local_stack
from app.sim.realtime_server import RealtimeSimulator
from bench._engine_cases import Line, cases, label_of

VOICES = ("en-us", "en-us+f2")  # espeak-ng's American English voice, and its female variant
WORKERS = 4
BAR = 0.90
HUMAN_NUMBER = "+15557654321"
REPLY_TIMEOUT = 25.0


@dataclass(frozen=True)
class Result:
    """One caller line as the engine took it."""

    voice: str
    line: Line
    heard: str | None
    action: str

    @property
    def right(self) -> bool:
        return self.action == self.line.expected


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept), as the recogniser writes them."""
    return re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions (Levenshtein distance over words)."""
    previous = list(range(len(hypothesis) + 1))
    for index, word in enumerate(reference, start=1):
        current = [index]
        for column, heard in enumerate(hypothesis, start=1):
            current.append(min(previous[column] + 1, current[-1] + 1, previous[column - 1] + (word != heard)))
        previous = current
    return previous[-1]


def _heard_decisions(brain: EngineBrain) -> list[Decision]:
    return [decision for decision in brain.decisions if decision.heard is not None]


async def _place(stack: LocalStack, engine: RealtimeSimulator, voice: str, lines: list[Line]) -> list[Result]:
    results: list[Result] = []
    index = len(engine.sessions)
    async with stack.caller(caller_state="NY") as caller:  # a one-party state: no recording notice
        await caller.dial()
        await caller.connect()
        brain = (await engine.wait_for_session(index)).brain
        assert isinstance(brain, EngineBrain)
        await caller.wait_agent_silent(quiet=0.5, timeout=REPLY_TIMEOUT)
        for number, line in enumerate(lines):
            if caller.closed_by_relay.is_set():
                results += [Result(voice, rest, None, "call ended") for rest in lines[number:]]
                break
            before = len(_heard_decisions(brain))
            await caller.say_text(line.text, voice=voice)
            await caller.wait_said()
            decision = await _next_decision(brain, before)
            if decision is None:
                results.append(Result(voice, line, None, "no reply"))
                continue
            action = decision.action
            results.append(
                Result(voice, line, decision.heard, label_of(action.kind, action.tool, action.arguments))
            )
            await caller.wait_agent_silent(quiet=1.5, timeout=REPLY_TIMEOUT)
        if not caller.closed_by_relay.is_set():
            await caller.hang_up()
    return results


async def _next_decision(brain: EngineBrain, before: int) -> Decision | None:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        decisions = _heard_decisions(brain)
        if len(decisions) > before:
            return decisions[before]
        await asyncio.sleep(0.05)
    return None


async def _worker(queue: asyncio.Queue[tuple[str, list[Line]]], results: list[Result]) -> None:
    engine = engine_server()
    overrides = {"human_transfer_number": HUMAN_NUMBER}
    async with local_stack(model=engine, twilio_rest=True, settings_overrides=overrides) as stack:
        while not queue.empty():
            voice, lines = queue.get_nowait()
            results += await _place(stack, engine, voice, lines)
            for result in results[-len(lines) :]:
                _print_result(result)
    if engine.validation_errors:
        print(f"PROBLEM: the engine's protocol layer reported {engine.validation_errors}")


def _print_result(result: Result) -> None:
    mark = "ok  " if result.right else "MISS"
    print(f"{mark} [{result.voice:5}] {result.line.text}")
    print(f"       heard:  {result.heard!r}")
    print(
        f"       action: {result.action}" + ("" if result.right else f"   (expected {result.line.expected})")
    )


def _summary(results: list[Result], voices: list[str]) -> float:
    print()
    print(f"{'voice':8} {'lines':>5} {'WER':>6} {'right actions':>14}")
    for voice in [*voices, "all"]:
        chosen = [r for r in results if voice in ("all", r.voice)]
        reference_words = sum(len(words(r.line.text)) for r in chosen)
        errors = sum(word_errors(words(r.line.text), words(r.heard or "")) for r in chosen)
        right = sum(r.right for r in chosen)
        wer = errors / max(1, reference_words)
        share = right / max(1, len(chosen))
        print(f"{voice:8} {len(chosen):5d} {wer:6.1%} {right:6d}/{len(chosen):<3d} {share:5.1%}")
    share = sum(r.right for r in results) / max(1, len(results))
    misses = [r for r in results if not r.right]
    if misses:
        print("\nmisses:")
        for r in misses:
            print(f"  [{r.voice}] {r.line.text!r} heard {r.heard!r}: {r.action} (expected {r.line.expected})")
    return share


async def run(voices: list[str], workers: int, limit: int | None) -> int:
    """Place every call, print the table and the figures; exit code 1 below the bar."""
    from app.settings import load_settings

    today = dt.datetime.now(ZoneInfo(load_settings(_env_file=None).business_timezone)).date()
    calls = cases(today)[:limit]
    queue: asyncio.Queue[tuple[str, list[Line]]] = asyncio.Queue()
    for lines in calls:
        for voice in voices:
            queue.put_nowait((voice, lines))
    started = time.monotonic()
    print(f"{sum(len(c) for c in calls)} caller lines x {len(voices)} voices, {workers} calls at a time")
    await warm_up()
    results: list[Result] = []
    await asyncio.gather(*(_worker(queue, results) for _ in range(workers)))
    share = _summary(results, voices)
    print(f"\nright actions: {share:.1%} (bar {BAR:.0%}); {time.monotonic() - started:.0f} s")
    return 0 if share >= BAR else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voices", default=",".join(VOICES), help="comma-separated espeak-ng voices")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--limit", type=int, default=None, help="only the first N calls")
    args = parser.parse_args(argv)
    configure_logging("ERROR")
    return asyncio.run(run(args.voices.split(","), args.workers, args.limit))


if __name__ == "__main__":
    sys.exit(main())
