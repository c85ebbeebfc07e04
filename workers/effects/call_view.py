"""Everything stored about one call, loaded in one go for the post-call effects to read."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import (
    Call,
    CallMessage,
    CallNoteRow,
    CallOutcome,
    CallSegment,
    CallSummary,
    ConsentDecisionRow,
    ConsentNoticeAttemptRow,
    RecordingRow,
    ToolInvocationRow,
    TranscriptTurnRow,
    TransferAttempt,
)


class _HasCallSid(Protocol):
    call_sid: Any


_Row = TypeVar("_Row", bound=_HasCallSid)


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
    segments: list[CallSegment] = field(default_factory=list)
    transfers: list[TransferAttempt] = field(default_factory=list)
    messages: list[CallMessage] = field(default_factory=list)
    notice_attempts: list[ConsentNoticeAttemptRow] = field(default_factory=list)

    @property
    def transfer_connected(self) -> bool:
        """A person took the call: a hand-off completed, or the last segment handed the caller over and
        never heard back (no busy / no-answer / declined came)."""
        if any(attempt.result == "completed" for attempt in self.transfers):
            return True
        if self.call.end_reason != "transferred":
            return False
        last = max((segment.segment for segment in self.segments), default=1)
        attempt = next((a for a in self.transfers if a.segment == last), None)
        return attempt is None or attempt.result is None

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


def cost_parts(view: CallView) -> dict[str, Decimal]:
    """The call's cost in USD by part (audio in/out, text, transcription, summary), from its usage."""
    parts = view.call.cost_breakdown or {}
    if not parts and view.call.cost_usd is not None:
        return {"model": Decimal(view.call.cost_usd)}
    return {key: Decimal(str(value)) for key, value in parts.items()}


def call_cost_usd(view: CallView) -> Decimal:
    """The call's total cost in USD (every segment, transcription and the summary)."""
    return sum(cost_parts(view).values(), Decimal(0))


def cost_line(view: CallView) -> str:
    """The call's cost for staff: the total in dollars and what it is made of."""
    parts = cost_parts(view)
    shown = ", ".join(f"{part.replace('_', ' ')} ${value:.4f}" for part, value in parts.items() if value)
    return f"${call_cost_usd(view):.4f}" + (f" ({shown})" if shown else "")


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
        segments=_rows(session, CallSegment, call_sid, CallSegment.segment),
        transfers=_rows(session, TransferAttempt, call_sid, TransferAttempt.segment),
        messages=_rows(session, CallMessage, call_sid, CallMessage.at),
        notice_attempts=_rows(session, ConsentNoticeAttemptRow, call_sid, ConsentNoticeAttemptRow.attempt),
    )


def _rows(session: Session, model: type[_Row], call_sid: str, order: Any) -> list[_Row]:
    return list(session.scalars(select(model).where(model.call_sid == call_sid).order_by(order)))
