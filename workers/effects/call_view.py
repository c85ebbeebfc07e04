"""Everything stored about one call, loaded in one go for the post-call effects to read."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import (
    Call,
    CallNoteRow,
    CallOutcome,
    CallSummary,
    ConsentDecisionRow,
    RecordingRow,
    ToolInvocationRow,
    TranscriptTurnRow,
)


@dataclass(frozen=True, slots=True)
class CallView:
    """A call and its child rows, ordered by time (detached: readable after the session closes)."""

    call: Call
    turns: list[TranscriptTurnRow]
    tools: list[ToolInvocationRow]
    notes: list[CallNoteRow]
    recordings: list[RecordingRow]
    consent: ConsentDecisionRow | None
    outcome: CallOutcome | None
    summary: CallSummary | None

    @property
    def tags(self) -> set[str]:
        """The note tags on the call (emergency, transferred, ...)."""
        return {note.tag for note in self.notes}

    @property
    def duration_seconds(self) -> float | None:
        """Started to ended, when both are known."""
        start, end = self.call.started_at, self.call.ended_at
        return (end - start).total_seconds() if start and end else None

    def transcript_text(self) -> str:
        """The conversation as `Caller:` / `Agent:` lines, marking cut-off agent turns."""
        lines = []
        for turn in self.turns:
            who = "Caller" if turn.speaker == "caller" else "Agent"
            cut = " [interrupted]" if turn.interrupted else ""
            lines.append(f"{who}: {turn.text}{cut}")
        return "\n".join(lines)


def load_call_view(session: Session, call_sid: str) -> CallView | None:
    """The call's view, or None if the call is unknown."""
    call = session.get(Call, call_sid)
    if call is None:
        return None

    return CallView(
        call=call,
        turns=list(
            session.scalars(
                select(TranscriptTurnRow)
                .where(TranscriptTurnRow.call_sid == call_sid)
                .order_by(TranscriptTurnRow.seq)
            )
        ),
        tools=list(
            session.scalars(
                select(ToolInvocationRow)
                .where(ToolInvocationRow.call_sid == call_sid)
                .order_by(ToolInvocationRow.seq)
            )
        ),
        notes=list(
            session.scalars(
                select(CallNoteRow).where(CallNoteRow.call_sid == call_sid).order_by(CallNoteRow.at)
            )
        ),
        recordings=list(
            session.scalars(
                select(RecordingRow)
                .where(RecordingRow.call_sid == call_sid)
                .order_by(RecordingRow.started_at)
            )
        ),
        consent=session.get(ConsentDecisionRow, call_sid),
        outcome=session.get(CallOutcome, call_sid),
        summary=session.get(CallSummary, call_sid),
    )
