"""Classify what a call achieved, from its end reason, notes and tool calls (no model involved).

Rules, first match wins, each leaving its evidence in `reasons`:
1. emergency: the relay noted an emergency (callers are told to hang up and dial 911; staff must know).
2. transferred: a person took the call (a hand-off completed; one that came back busy, unanswered or
   declined does not count: the caller went on with the agent).
3. booked: a booking tool succeeded.
4. message_taken: the agent took a message for staff (`take_message`).
5. failed: the call broke (end reason failed/abandoned, or the model failed) before achieving anything.
6. information_given: an information tool (hours, availability, ...) answered the caller.
7. otherwise how it ended: caller_hung_up, agent_hung_up, idle, capped (unknown reasons count as failed);
   a caller who never came back from a hand-off that did not connect hung up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import DONE, claim_effect, settle_effect
from app.db.models import Call, CallOutcome
from app.db.upsert import insert_for
from workers.effects.call_view import CallView, load_call_view

EFFECT = "outcome"
OUTCOME_LABELS = {
    "booked": "appointment booked",
    "information_given": "information given",
    "transferred": "transferred to staff",
    "message_taken": "message taken for staff",
    "emergency": "emergency",
    "caller_hung_up": "caller hung up",
    "agent_hung_up": "agent ended the call",
    "idle": "ended after silence",
    "capped": "hit the call length limit",
    "failed": "call failed",
}
BOOKING_TOOLS = frozenset({"book_appointment"})
ACTION_TOOLS = frozenset({"transfer_to_human", "end_call", "hang_up"})
END_REASON_OUTCOMES = {
    "caller_hung_up": "caller_hung_up",
    "agent_hung_up": "agent_hung_up",
    "idle": "idle",
    "capped": "capped",
    "transferred": "caller_hung_up",  # only reached when the hand-off did not connect
}


def decide_outcome(view: CallView) -> tuple[str, list[str]]:
    """The outcome and the evidence for it."""
    tags = view.tags
    end_reason = view.call.end_reason or "unknown"
    if "emergency" in tags:
        return "emergency", ["note: emergency"]
    if view.transfer_connected:
        return "transferred", ["a hand-off connected"]
    came_back = [f"transfer in segment {a.segment}: {a.result}" for a in view.transfers if a.result]
    booked = [tool for tool in view.tools if tool.ok and tool.name in BOOKING_TOOLS]
    if booked:
        return "booked", [f"tool {tool.name} succeeded (seq {tool.seq})" for tool in booked] + came_back
    if view.messages:
        return "message_taken", [f"{len(view.messages)} message(s) taken", *came_back]
    if end_reason in {"failed", "abandoned"} or "model_failed" in tags:
        evidence = (
            f"end reason: {end_reason}" if end_reason in {"failed", "abandoned"} else "note: model_failed"
        )
        return "failed", [evidence]
    informed = [tool for tool in view.tools if tool.ok and tool.name not in ACTION_TOOLS]
    if informed:
        return "information_given", [f"tool {tool.name} answered (seq {tool.seq})" for tool in informed]
    outcome = END_REASON_OUTCOMES.get(end_reason, "failed")
    return outcome, [f"end reason: {end_reason}", *came_back]


def classify_outcome(sessions: sessionmaker[Session], call_sid: str) -> str | None:
    """Classify and store the call's outcome once; returns it (None for an unknown call)."""
    with sessions.begin() as session:
        if session.get(Call, call_sid) is None:
            return None
        claim = claim_effect(session, call_sid, EFFECT)
        if claim is None:
            return session.scalar(select(CallOutcome.outcome).where(CallOutcome.call_sid == call_sid))
        view = load_call_view(session, call_sid)
        assert view is not None
        outcome, reasons = decide_outcome(view)
        _store(session, call_sid, outcome, reasons)
        settle_effect(session, call_sid, EFFECT, DONE, {"outcome": outcome})
        return outcome


def _store(session: Session, call_sid: str, outcome: str, reasons: list[Any]) -> None:
    table = CallOutcome.__table__
    stmt = insert_for(session, CallOutcome).values(call_sid=call_sid, outcome=outcome, reasons=reasons)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid],
        set_={"outcome": stmt.excluded.outcome, "reasons": stmt.excluded.reasons},
    )
    session.execute(stmt)
