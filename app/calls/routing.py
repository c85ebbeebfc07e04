"""Which Realtime model a call gets.

`gpt-realtime-mini` (REALTIME_MODEL) costs about a third of the full model per audio minute, so it takes
ordinary calls. The full model (REALTIME_MODEL_HARD) takes calls a rule marks as harder:
- the caller's number is listed in HARD_CALLER_NUMBERS (known complex accounts, VIPs);
- the call was escalated: an emergency or a transfer attempt happened, and the session is opened again
  (the caller came back from a failed transfer, or the model socket was reconnected). A live session cannot
  change its model, so an escalation takes effect at the next session of the call.
"""

from __future__ import annotations

from app.settings import Settings


def choose_model(settings: Settings, caller_number: str | None, *, escalated: bool = False) -> str:
    """The model for a (new) session of this call."""
    if escalated or (caller_number and caller_number in settings.hard_callers()):
        return settings.realtime_model_hard
    return settings.realtime_model
