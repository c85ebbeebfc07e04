"""The engine's `Brain`: it hears the caller's committed audio, asks the policy, and says the result.

Recognition runs in a worker thread as soon as a turn is committed; the response VAD starts waits for it
(and for the transcription event the relay stores), then for the policy's decision and its synthesised
audio. A response the relay asks for after a function_call_output voices that result; per-response
instructions (the relay's own lines) are said as asked. Every decision is kept in `decisions` (what was
heard, what was done) for the evaluation and the demo.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.sim.engine.asr import recognizer_for
from app.sim.engine.policy import Action, BusinessContext, DialoguePolicy
from app.sim.engine.replies import instruction_line
from app.sim.engine.tts import prepare
from app.sim.realtime_audio import AudioFormat
from app.sim.realtime_brain import Heard, TurnPlan
from app.sim.realtime_script import SimTurn, ToolCallRecord, ToolOutputRecord

__all__ = ["Decision", "EngineBrain"]

log = logging.getLogger(__name__)

GREETING = "Thanks for calling. How can I help?"
FALLBACK = "How can I help?"


@dataclass(frozen=True)
class Decision:
    """One response the engine decided: what it heard (None when it answered a tool or an instruction)."""

    heard: str | None
    action: Action


class EngineBrain:
    """One session's listening brain."""

    def __init__(self) -> None:
        self.tool_calls: list[ToolCallRecord] = []
        self.tool_outputs: list[ToolOutputRecord] = []
        self.decisions: list[Decision] = []
        self.policy = DialoguePolicy(BusinessContext.from_session({}))
        self._pending_heard: list[asyncio.Task[str]] = []
        self._pending_outputs: list[ToolOutputRecord] = []
        self._pending_text: list[str] = []

    # ---- what the session tells the brain --------------------------------------------------------------

    def configure(self, session: dict[str, Any]) -> None:
        self.policy.context = BusinessContext.from_session(session)

    def hear(self, audio: bytes, audio_format: AudioFormat) -> Heard:
        if not audio:
            return None
        samples = audio_format.decode(audio)
        services = self.policy.context.services
        expecting = self.policy.awaiting if self.policy.awaiting != "message" else None
        guesses = asyncio.ensure_future(_recognize(services, samples, audio_format.sample_rate, expecting))
        task = asyncio.ensure_future(self._chosen(guesses))
        self._pending_heard.append(task)

        async def heard() -> str:
            return await asyncio.shield(task)

        return heard

    async def _chosen(self, guesses: Awaitable[list[str]]) -> str:
        return self.policy.choose(await guesses)

    def on_caller_text(self, text: str) -> None:
        self._pending_text.append(text)

    def record_tool_call(self, call_id: str, name: str, arguments: str) -> None:
        self.tool_calls.append(ToolCallRecord(call_id, name, arguments))

    def record_tool_output(self, call_id: str, output: str) -> None:
        name = next((call.name for call in self.tool_calls if call.call_id == call_id), None)
        record = ToolOutputRecord(call_id, output, name)
        self.tool_outputs.append(record)
        self._pending_outputs.append(record)

    # ---- what responses say ------------------------------------------------------------------------------

    def greeting_turn(self, instructions: str | None) -> TurnPlan:
        return self._say(Action("greeting", instruction_line(instructions) or GREETING))

    def out_of_band_turn(self, instructions: str | None) -> TurnPlan:
        return self._say(Action("line", instruction_line(instructions) or "One moment."))

    def idle_turn(self) -> TurnPlan:
        return self._say(Action("line", "Are you still there?"))

    def next_turn(self, instructions: str | None) -> TurnPlan:
        line = instruction_line(instructions)
        if line is not None:
            return self._say(Action("line", line))
        return self._decide

    def _say(self, action: Action) -> TurnPlan:
        async def plan() -> SimTurn:
            self.decisions.append(Decision(None, action))
            await prepare(action.say)
            return SimTurn(say=action.say)

        return plan

    async def _decide(self) -> SimTurn:
        heard: str | None = None
        if self._pending_outputs:
            output = self._pending_outputs.pop(0)
            call = next((c for c in self.tool_calls if c.call_id == output.call_id), None)
            arguments = json.loads(call.arguments) if call is not None else {}
            action = self.policy.on_tool_result(output.name or "", arguments, output.output)
        elif self._pending_heard or self._pending_text:
            heard = await self._take_heard()
            action = self.policy.on_caller(heard)
        else:
            action = Action("line", FALLBACK)
        await prepare(action.say)
        self.decisions.append(Decision(heard, action))
        return SimTurn(say=action.say, tool=action.tool, arguments=dict(action.arguments))

    async def _take_heard(self) -> str:
        """Everything the caller said since the last answer (a turn split by a pause is one request)."""
        texts = [await task for task in list(self._pending_heard)]
        self._pending_heard.clear()
        texts = [*self._pending_text, *texts]
        self._pending_text.clear()
        return " ".join(text for text in texts if text)


async def _recognize(
    services: tuple[str, ...], samples: np.ndarray[Any, Any], rate: int, expecting: str | None
) -> list[str]:
    try:
        recognizer = await asyncio.to_thread(recognizer_for, services)
        return await asyncio.to_thread(recognizer.hypotheses, samples, rate, expecting)
    except Exception:  # a recogniser failure is heard as nothing: the caller is asked to say it again
        log.exception("speech recognition failed")
        return [""]
