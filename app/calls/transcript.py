"""The call's transcript as the caller experienced it.

Caller turns come from the model's input transcription. Agent turns are recorded when their audio has been
heard: fully when the item's last mark echoes, or cut at barge-in to the share of words matching the share of
audio heard (the model's transcript has no word timings, so this is a proportional estimate). Each turn is
emitted to the sink as soon as it is final, which is what checkpoints the transcript during the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.calls.events import CallEventSink, TranscriptTurn


@dataclass(slots=True)
class AgentUtterance:
    item_id: str
    started_at: float
    parts: list[str] = field(default_factory=list)
    final_text: str | None = None
    generated_ms: int = 0
    generation_done: bool = False

    @property
    def text(self) -> str:
        return self.final_text if self.final_text is not None else "".join(self.parts)


def cut_to_heard(text: str, heard_ms: int, generated_ms: int) -> str:
    """The words of `text` the caller heard, pro rata of audio heard."""
    if generated_ms <= 0 or heard_ms >= generated_ms:
        return text.strip()
    words = text.split()
    keep = round(len(words) * max(heard_ms, 0) / generated_ms)
    return " ".join(words[:keep])


class Transcript:
    """Collects and emits the turns of one call."""

    def __init__(
        self,
        call_sid: str,
        sink: CallEventSink,
        *,
        seq_base: int = 0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._call_sid = call_sid
        self._sink = sink
        self._wall = wall
        self._seq = seq_base
        self._agent: dict[str, AgentUtterance] = {}
        self._caller_stopped_at: float | None = None
        self.turns: list[TranscriptTurn] = []

    def _emit(
        self,
        speaker: str,
        text: str,
        started_at: float,
        interrupted: bool = False,
        speech_ended_at: float | None = None,
    ) -> None:
        if not text:
            return
        self._seq += 1
        turn = TranscriptTurn(
            call_sid=self._call_sid,
            seq=self._seq,
            speaker="caller" if speaker == "caller" else "agent",
            text=text,
            started_at=started_at,
            ended_at=self._wall(),
            interrupted=interrupted,
            speech_ended_at=speech_ended_at,
        )
        self.turns.append(turn)
        self._sink.emit(turn)

    # --- caller ----------------------------------------------------------------------------------------
    def caller_stopped(self) -> None:
        """The caller stopped speaking (server VAD); stamped on the turn its transcription completes."""
        self._caller_stopped_at = self._wall()

    def caller_said(self, text: str, started_at: float | None) -> None:
        start = started_at or self._wall()
        stopped = self._caller_stopped_at
        self._emit(
            "caller", text.strip(), start, speech_ended_at=stopped if stopped and stopped >= start else None
        )

    # --- agent -----------------------------------------------------------------------------------------
    def agent_audio(self, item_id: str, ms: int) -> None:
        utterance = self._agent.get(item_id)
        if utterance is None:
            utterance = self._agent[item_id] = AgentUtterance(item_id, self._wall())
        utterance.generated_ms += ms

    def agent_text(self, item_id: str, delta: str) -> None:
        utterance = self._agent.get(item_id)
        if utterance is None:
            utterance = self._agent[item_id] = AgentUtterance(item_id, self._wall())
        utterance.parts.append(delta)

    def agent_text_done(self, item_id: str, transcript: str) -> None:
        utterance = self._agent.get(item_id)
        if utterance is not None:
            utterance.final_text = transcript

    def agent_generated(self, item_id: str) -> None:
        """The model finished generating this item (its audio may still be playing)."""
        utterance = self._agent.get(item_id)
        if utterance is not None:
            utterance.generation_done = True

    def agent_played(self, item_id: str) -> None:
        """All audio of the item was heard: record it whole, once generation is complete."""
        utterance = self._agent.get(item_id)
        if utterance is not None and utterance.generation_done:
            del self._agent[item_id]
            self._emit("agent", utterance.text.strip(), utterance.started_at)

    def agent_interrupted(self, item_id: str, heard_ms: int) -> None:
        """Barge-in: record the part heard and forget the rest."""
        utterance = self._agent.pop(item_id, None)
        if utterance is not None:
            text = cut_to_heard(utterance.text, heard_ms, utterance.generated_ms)
            self._emit("agent", text, utterance.started_at, interrupted=True)

    def agent_discarded(self, item_id: str) -> None:
        """Never played (cancelled before any audio reached the caller)."""
        self._agent.pop(item_id, None)

    def pending_agent_items(self) -> list[str]:
        return list(self._agent)

    def is_pending(self, item_id: str) -> bool:
        return item_id in self._agent

    def condensed(self, limit: int = 16, max_chars: int = 300) -> list[str]:
        """The last turns as short lines, for a new model session to pick up the conversation."""
        lines = []
        for turn in self.turns[-limit:]:
            who = "Caller" if turn.speaker == "caller" else "You"
            text = turn.text if len(turn.text) <= max_chars else turn.text[:max_chars] + "..."
            lines.append(f"{who}: {text}{' (cut off)' if turn.interrupted else ''}")
        return lines

    def finish(self, heard_ms: Callable[[str], int]) -> None:
        """Call end: record what was heard of anything still open."""
        for item_id in list(self._agent):
            utterance = self._agent[item_id]
            heard = heard_ms(item_id)
            if utterance.generation_done and heard >= utterance.generated_ms:
                self.agent_played(item_id)
            else:
                self.agent_interrupted(item_id, heard)
