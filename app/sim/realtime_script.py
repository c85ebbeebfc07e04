"""What the simulated model says: a script of turns shared by every session of one simulator.

`SimScript` is the scripted `Brain` (see realtime_brain): exact, repeatable behaviour for tests and faults.

Rules (the relay's tests rely on them):
- the first response of a connection with no caller turn yet speaks the greeting;
- an out-of-band response (`response.conversation == "none"`) speaks its instructions verbatim when they are
  short (<= 120 characters), else the filler line;
- every other response consumes the next `SimTurn` (so does the response after a function_call_output);
- once the script is exhausted every such response says the fallback reply;
- instructions that ask for a sentence "word for word: "..."" get it said verbatim, before the greeting on
  a connection's first response, or alone (consuming no scripted turn); `paraphrase_verbatim` makes the
  next N such sentences come out paraphrased instead, as a model that does not comply would say them.
A reconnect (a new session on the same simulator) continues where the script stopped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.sim.realtime_audio import AudioFormat

__all__ = ["MAX_VERBATIM_INSTRUCTIONS", "SimScript", "SimTurn", "ToolCallRecord", "ToolOutputRecord"]

MAX_VERBATIM_INSTRUCTIONS = 120
_WORD_FOR_WORD = re.compile(r'word for word[^"]*"([^"]+)"', re.IGNORECASE)


@dataclass
class SimTurn:
    """One model turn: optionally answers caller text, speaks, then optionally calls a tool."""

    hears: str | None = None  # the caller text this turn answers (used as the input transcription)
    say: str | None = None  # the model speaks this
    tool: str | None = None  # then calls this function...
    arguments: dict[str, object] = field(default_factory=dict)  # ...with these arguments
    audio_seconds: float | None = None  # stream this much audio instead of tts(say) (long audio)


@dataclass(frozen=True)
class ToolCallRecord:
    """A function call the simulated model made."""

    call_id: str
    name: str
    arguments: str  # the JSON string sent in function_call_arguments.done


@dataclass(frozen=True)
class ToolOutputRecord:
    """A function_call_output item the client created."""

    call_id: str
    output: str
    name: str | None  # the called function, when the call came from this simulator


class SimScript:
    """The shared cursor over the scripted turns, plus a record of tool calls and their outputs."""

    def __init__(
        self,
        turns: Sequence[SimTurn],
        *,
        greeting: str,
        filler: str,
        fallback_reply: str,
        idle_reply: str = "Are you still there?",
    ) -> None:
        self.turns = list(turns)
        self.idle_reply = idle_reply
        self.greeting = greeting
        self.filler = filler
        self.fallback_reply = fallback_reply
        self.position = 0
        self.paraphrase_verbatim = 0
        self.tool_calls: list[ToolCallRecord] = []
        self.tool_outputs: list[ToolOutputRecord] = []

    @property
    def exhausted(self) -> bool:
        """True once every scripted turn has been consumed."""
        return self.position >= len(self.turns)

    def configure(self, session: dict[str, Any]) -> None:
        """The script does not depend on the session's config."""

    def next_turn(self, instructions: str | None = None) -> SimTurn:
        """A sentence asked for word for word; else consume the next scripted turn, or the fallback reply
        once the script is exhausted."""
        sentence = self.word_for_word(instructions)
        if sentence is not None:
            return SimTurn(say=sentence)
        if self.exhausted:
            return SimTurn(say=self.fallback_reply)
        turn = self.turns[self.position]
        self.position += 1
        return turn

    def upcoming_caller_text(self) -> str | None:
        """What the caller is scripted to be saying now: the `hears` of the next unconsumed turn."""
        return None if self.exhausted else self.turns[self.position].hears

    def greeting_turn(self, instructions: str | None = None) -> SimTurn:
        """The opening line of a connection (after any word-for-word sentence it was asked for)."""
        sentence = self.word_for_word(instructions)
        return SimTurn(say=f"{sentence} {self.greeting}" if sentence else self.greeting)

    def word_for_word(self, instructions: str | None) -> str | None:
        """The sentence the instructions ask to say word for word, as this model says it (None: none)."""
        match = _WORD_FOR_WORD.search(instructions or "")
        if match is None:
            return None
        if self.paraphrase_verbatim > 0:
            self.paraphrase_verbatim -= 1
            return "Just so you know, we might keep a recording of this."
        return match.group(1).strip()

    def idle_turn(self) -> SimTurn:
        """What the model says after the idle timeout."""
        return SimTurn(say=self.idle_reply)

    def hear(self, audio: bytes, audio_format: AudioFormat) -> str:
        """The caller's words are the script's: the `hears` of the next unconsumed turn."""
        return self.upcoming_caller_text() or ""

    def on_caller_text(self, text: str) -> None:
        """Text messages do not move the script."""

    def out_of_band_turn(self, instructions: str | None) -> SimTurn:
        """The line an out-of-band response speaks."""
        sentence = self.word_for_word(instructions)
        if sentence is not None:
            return SimTurn(say=sentence)
        if instructions and len(instructions) <= MAX_VERBATIM_INSTRUCTIONS:
            return SimTurn(say=instructions)
        return SimTurn(say=self.filler)

    def record_tool_call(self, call_id: str, name: str, arguments: str) -> None:
        """Remember a call so its output can be matched to the function name."""
        self.tool_calls.append(ToolCallRecord(call_id, name, arguments))

    def record_tool_output(self, call_id: str, output: str) -> None:
        """Remember a function_call_output the client sent."""
        name = next((call.name for call in self.tool_calls if call.call_id == call_id), None)
        self.tool_outputs.append(ToolOutputRecord(call_id, output, name))
