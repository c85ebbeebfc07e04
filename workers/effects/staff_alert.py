"""An alert to staff *during* the call: an emergency nobody could take (no human number, or the transfer
failed). The caller has been told to hang up and dial the emergency number; staff hear of it at once,
on every configured summary channel, without waiting for the end of the call and its summary.

Each channel is its own effect (`alert_webhook`, `alert_email`) in the deliveries ledger, so an alert is
sent once per call and channel; a retry carries the same idempotency key / Message-ID.
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import DONE, SETTLED, bump_attempts, effect_status, settle_effect
from app.db.models import Call, CallNoteRow
from app.settings import Settings
from workers.effects.delivery import EMAIL, WEBHOOK, SmtpFactory, default_smtp, send_email
from workers.effects.errors import PermanentEffectError
from workers.effects.http_delivery import post_json

EFFECTS = {WEBHOOK: "alert_webhook", EMAIL: "alert_email"}
WHY = {
    "emergency_no_human": "no transfer number is configured",
    "emergency_transfer_failed": "the transfer to a person failed",
}


def alert_text(call: Call, why: str, emergency_number: str) -> tuple[str, str]:
    """(headline, body) of the alert."""
    caller = call.from_number or "an unknown number"
    headline = f"URGENT: possible emergency on a call from {caller}"
    body = (
        f"The caller described an emergency and {WHY.get(why, 'nobody could take the call')}. "
        f"The agent told them to hang up and dial {emergency_number}. Please check on them now.\n"
        f"Call SID: {call.call_sid}"
    )
    return headline, body


def _alert_why(session: Session, call_sid: str) -> str:
    detail = session.scalar(
        select(CallNoteRow.detail)
        .where(CallNoteRow.call_sid == call_sid, CallNoteRow.tag == "staff_alert")
        .order_by(CallNoteRow.at)
        .limit(1)
    )
    return str((detail or {}).get("why", ""))


def alert_staff(
    sessions: sessionmaker[Session],
    settings: Settings,
    call_sid: str,
    channel: str,
    *,
    http: httpx.Client,
    smtp_factory: SmtpFactory = default_smtp,
) -> str:
    """Send the call's staff alert on one channel, once; returns the effect's status."""
    effect = EFFECTS[channel]
    with sessions() as session:
        status = effect_status(session, call_sid, effect)
        if status in SETTLED:
            return str(status)
        call = session.get(Call, call_sid)
        if call is None:
            raise PermanentEffectError("unknown call")
        headline, body = alert_text(call, _alert_why(session, call_sid), settings.emergency_number)
    with sessions.begin() as session:
        bump_attempts(session, call_sid, effect)
    detail: dict[str, Any]
    if channel == WEBHOOK:
        assert settings.summary_webhook_url is not None
        payload = {"text": f"{headline}\n{body}", "alert": "emergency", "call_sid": call_sid}
        headers = {"Idempotency-Key": f"{effect}:{call_sid}"}
        data = json.dumps(payload).encode()
        response = post_json(http, settings.summary_webhook_url, data, headers, what="staff alert webhook")
        detail = {"http_status": response.status_code}
    else:
        message = EmailMessage()
        message["Subject"] = headline
        message["From"] = settings.summary_email_from or f"voice-agent@{settings.smtp_host}"
        message["To"] = settings.summary_email_to or ""
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<alert.{call_sid}@voice-agent>"
        message["X-Priority"] = "1"
        message.set_content(body + "\n")
        send_email(message, settings, smtp_factory)
        detail = {"channel": EMAIL}
    with sessions.begin() as session:
        settle_effect(session, call_sid, effect, DONE, detail)
    return DONE
