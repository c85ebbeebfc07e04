"""The seam between the Realtime protocol and what the model decides: a `Brain`.

One protocol implementation (realtime_session, realtime_handlers, realtime_turns, realtime_response) serves
two brains: the scripted one (`SimScript`: exact, repeatable turns for tests and faults) and the offline
engine's listening one (app/sim/engine: it recognises the caller's audio and follows a dialogue policy).
The session asks the brain what to say; everything on the wire (event shapes, validation, VAD, streaming,
cancel and truncate) stays in the protocol layer.

A turn may be decided at once (a `SimTurn`) or later (a coroutine function returning one): the engine must
wait for speech recognition and tool results, so the response is created at once (as the service does) and
its content follows when the brain has decided, unless the response was cancelled meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from app.sim.realtime_audio import AudioFormat
from app.sim.realtime_script import SimTurn, ToolCallRecord, ToolOutputRecord

__all__ = ["Brain", "Heard", "TurnPlan"]

TurnPlan = SimTurn | Callable[[], Awaitable[SimTurn]]
"""What a response says: decided now, or by awaiting the callable."""

Heard = str | Callable[[], Awaitable[str]] | None
"""What the brain heard in a committed caller turn (the input transcription), now or later; None = nothing."""


class Brain(Protocol):
    """Decides what the simulated model hears and says."""

    tool_calls: list[ToolCallRecord]
    tool_outputs: list[ToolOutputRecord]

    def configure(self, session: dict[str, Any]) -> None:
        """The session's effective config after each session.update (instructions, tools, formats)."""

    def greeting_turn(self, instructions: str | None) -> TurnPlan:
        """The first response of a connection, before any caller turn."""

    def next_turn(self, instructions: str | None) -> TurnPlan:
        """An in-conversation response (VAD's, or the client's with optional per-response instructions)."""

    def out_of_band_turn(self, instructions: str | None) -> TurnPlan:
        """An out-of-band response (`conversation: "none"`)."""

    def idle_turn(self) -> TurnPlan:
        """The response after server VAD's idle timeout."""

    def hear(self, audio: bytes, audio_format: AudioFormat) -> Heard:
        """A committed caller turn of wire audio (may be empty when the audio is not kept)."""

    def on_caller_text(self, text: str) -> None:
        """A user text message the client created."""

    def record_tool_call(self, call_id: str, name: str, arguments: str) -> None:
        """A function call this brain's response made."""

    def record_tool_output(self, call_id: str, output: str) -> None:
        """A function_call_output the client created."""
