"""Recording consent: whether this caller must hear the recording notice, and why.

Two-party (all-party) consent states require every party's consent to record. Twilio reports the caller's
state as `FromState`/`CallerState`; when it is one of these, or unknown (withheld numbers, foreign callers,
VoIP), the notice is given (`RECORDING_CONSENT=auto`). `always` gives it on every call; `never` is refused
at start-up while recording is on. The decision and its reason are kept with the call for the audit.
Not legal advice: businesses with callers abroad (e.g. the EU) should use `always`.
"""

from __future__ import annotations

from dataclasses import dataclass

TWO_PARTY_STATES = frozenset({"IL", "CA", "FL", "MA", "MD", "MT", "NH", "PA", "WA"})
NOTICE = "This call may be recorded."


@dataclass(frozen=True, slots=True)
class ConsentChoice:
    notice_required: bool
    reason: str


def decide_consent(mode: str, caller_state: str | None, *, recording_enabled: bool) -> ConsentChoice:
    """Whether to announce recording on this call, with the reason recorded for the audit."""
    state = (caller_state or "").strip().upper()
    if mode == "always":
        return ConsentChoice(True, "mode_always")
    if mode == "never":
        return ConsentChoice(False, "mode_never" if not recording_enabled else "refused_mode_never")
    if not state:
        return ConsentChoice(True, "state_unknown")
    if state in TWO_PARTY_STATES:
        return ConsentChoice(True, f"two_party_state:{state}")
    return ConsentChoice(False, f"one_party_state:{state}")
