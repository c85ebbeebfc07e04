"""Cost limits of a call: the duration cap and dormant-call handling.

Realtime audio is billed per second, so a call cannot run forever: `MAX_CALL_SECONDS` (600) ends it with a
spoken heads-up `MAX_CALL_WARNING_SECONDS` before and a polite goodbye at the cap (a transfer already under
way is left to finish). A caller who goes silent while the agent is neither speaking nor working is asked if
they are still there after `IDLE_PROMPT_SECONDS` (8) of such silence, and said goodbye to after
`IDLE_HANGUP_SECONDS` (20).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.calls.call import Call

TICK_SECONDS = 0.25
_OWN_LINES = frozenset({"idle_prompt", "cap_warning", "filler"})


class IdleClock:
    """Seconds of caller silence counted only while the agent is quiet and idle."""

    def __init__(self) -> None:
        self.silent_for = 0.0
        self.prompted = False
        self.caller_speaking = False

    def caller_active(self, *, speaking: bool) -> None:
        self.caller_speaking = speaking
        self.silent_for = 0.0
        self.prompted = False

    def agent_replying(self, purpose: str | None) -> None:
        """A real reply restarts the count; the agent's own idle or cap lines do not."""
        if purpose not in _OWN_LINES:
            self.silent_for = 0.0
            self.prompted = False

    def agent_working_done(self) -> None:
        self.silent_for = 0.0

    def tick(self, seconds: float, *, agent_busy: bool) -> None:
        if not agent_busy and not self.caller_speaking:
            self.silent_for += seconds


def agent_busy(call: Call) -> bool:
    """True while the agent speaks, a response runs, or a tool works."""
    return (
        call.playback.is_playing
        or not call.drained.is_set()
        or call.gate.busy
        or call.tool_calls_running > 0
        or not call.model_ready.is_set()
    )


async def watch_limits(call: Call) -> None:
    """Runs for the life of an attached call."""
    settings = call.settings
    started = last = time.monotonic()
    warned = settings.max_call_warning_seconds <= 0
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now = time.monotonic()
        elapsed, step, last = now - started, now - last, now
        if call.control.busy:
            continue
        if elapsed >= settings.max_call_seconds:
            call.log.info("call_capped", seconds=round(elapsed))
            await call.control.hang_up("capped", goodbye=call.prompts.line("cap_goodbye"))
            return
        if not warned and elapsed >= settings.max_call_seconds - settings.max_call_warning_seconds:
            warned = True
            await call.say(call.prompts.line("cap_warning"), "cap_warning")
        call.idle.tick(step, agent_busy=agent_busy(call))
        if call.idle.silent_for >= settings.idle_hangup_seconds:
            call.log.info("call_idle", seconds=round(call.idle.silent_for))
            await call.control.hang_up("idle", goodbye=call.prompts.line("idle_goodbye"))
            return
        if call.idle.silent_for >= settings.idle_prompt_seconds and not call.idle.prompted:
            call.idle.prompted = True
            await call.say(call.prompts.line("idle_prompt"), "idle_prompt")
