"""What the simulated model says: a script of turns shared by every session of one simulator.

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
    ) -> None:
        self.turns = list(turns)
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

    def next_turn(self) -> SimTurn:
        """Consume the next scripted turn, or the fallback reply once the script is exhausted."""
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

    def out_of_band_turn(self, instructions: str | None) -> SimTurn:
        """The line an out-of-band response speaks."""
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
