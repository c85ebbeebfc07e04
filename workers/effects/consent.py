"""The recording-consent audit: for every call that needed the notice, was it spoken before recording?

Verdicts (stored in `consent_audits`, one per call):
- violation: something was recorded and the notice was required but not heard in full, or heard only after
  the first recording started; or something was recorded with no consent decision on file at all.
The notice is "played" only once an attempt was heard to its end, word for word (`consent_notice_attempts`
keeps every attempt and what the model said); the audit stores how many attempts it took and the words.
- compliant: the notice came first, or nothing was recorded, or the notice was not required.
- not_applicable: no decision and no recording (e.g. a call swept before it got that far).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import DONE, claim_effect, settle_effect
from app.db.models import Call, ConsentAudit
from app.db.upsert import insert_for
from workers.effects.call_view import CallView, load_call_view

EFFECT = "consent_audit"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The audit's result for one call."""

    verdict: str
    reason: str
    notice_required: bool | None
    recording_count: int
    first_recording_at: datetime | None
    notice_played_at: datetime | None
    notice_attempts: int = 0
    notice_said: str | None = None


def judge_consent(view: CallView) -> Verdict:
    """Apply the rules above to one call."""
    first = view.recordings[0].started_at if view.recordings else None
    decision = view.consent
    played = decision.notice_played_at if decision else None
    required = decision.notice_required if decision else None

    attempts = view.notice_attempts
    said = next((attempt.said for attempt in attempts if attempt.heard), None)

    def verdict(name: str, reason: str) -> Verdict:
        return Verdict(name, reason, required, len(view.recordings), first, played, len(attempts), said)

    if decision is None:
        if first is None:
            return verdict("not_applicable", "no consent decision and nothing recorded")
        return verdict("violation", "recorded without a consent decision on file")
    if not decision.notice_required:
        return verdict("compliant", f"notice not required: {decision.reason}")
    if first is None:
        return verdict("compliant", "notice required; nothing was recorded")
    if played is None:
        return verdict("violation", "recorded but the required notice was never heard in full")
    if played > first:
        lag = (played - first).total_seconds()
        return verdict("violation", f"the notice was played {lag:.1f}s after recording started")
    return verdict("compliant", "the notice was played before recording started")


def audit_consent(sessions: sessionmaker[Session], call_sid: str) -> str | None:
    """Audit the call once and store the verdict; returns it (None for an unknown call)."""
    with sessions.begin() as session:
        if session.get(Call, call_sid) is None:
            return None
        if claim_effect(session, call_sid, EFFECT) is None:
            return session.scalar(select(ConsentAudit.verdict).where(ConsentAudit.call_sid == call_sid))
        view = load_call_view(session, call_sid)
        assert view is not None
        result = judge_consent(view)
        values = {
            "verdict": result.verdict,
            "reason": result.reason,
            "notice_required": result.notice_required,
            "recording_count": result.recording_count,
            "first_recording_at": result.first_recording_at,
            "notice_played_at": result.notice_played_at,
            "notice_attempts": result.notice_attempts,
            "notice_said": result.notice_said,
        }
        stmt = insert_for(session, ConsentAudit).values(call_sid=call_sid, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[ConsentAudit.__table__.c.call_sid], set_=values)
        session.execute(stmt)
        settle_effect(session, call_sid, EFFECT, DONE, {"verdict": result.verdict})
        return result.verdict
