"""Which Realtime model a call gets.

`gpt-realtime-mini` (REALTIME_MODEL) costs about a third of the full model per audio minute, so it takes
ordinary calls. The full model (REALTIME_MODEL_HARD) takes calls a rule marks as harder:
- the caller's number is listed in HARD_CALLER_NUMBERS (known complex accounts, VIPs);
- the call was escalated: the caller described an emergency, or a transfer was attempted and did not
  connect. A live session cannot change its model, so an escalation takes effect at the call's next
  session: the caller's return from the hand-off (always escalated), or a reconnect of the model socket
  after an emergency or a failed transfer. A reconnect with no escalation keeps the call's model.
"""

from __future__ import annotations

from app.settings import Settings


def choose_model(settings: Settings, caller_number: str | None, *, escalated: bool = False) -> str:
    """The model for a (new) session of this call."""
    if escalated or (caller_number and caller_number in settings.hard_callers()):
        return settings.realtime_model_hard
    return settings.realtime_model
