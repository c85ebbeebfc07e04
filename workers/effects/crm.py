"""CRM sync: POST the call's record to `CRM_WEBHOOK_URL`, signed with HMAC-SHA256.

Receivers verify with the shared `CRM_WEBHOOK_SECRET`:
    expected = hex(HMAC_SHA256(secret, f"{X-Signature-Timestamp}.{raw body}"))
    compare with the `X-Signature` header, which reads `sha256=<expected>`, in constant time,
    and reject timestamps more than a few minutes old (replay).
`Idempotency-Key: crm_sync:<call_sid>` is the same on every retry, so a receiver can drop the rare
duplicate (a worker dying between the POST and recording it). No secret means no sync: an unsigned
request would be refused by a careful receiver and accepted by a careless one, neither of which is wanted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import DONE, SETTLED, SKIPPED, bump_attempts, effect_status, settle_effect
from app.settings import Settings
from workers.effects.call_view import CallView, call_cost_usd, cost_parts, load_call_view
from workers.effects.errors import PermanentEffectError
from workers.effects.http_delivery import post_json
from workers.effects.outcome import BOOKING_TOOLS

EFFECT = "crm_sync"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Signature` header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def crm_payload(view: CallView) -> dict[str, Any]:
    """The call as the CRM receives it."""
    call = view.call
    return {
        "event": "call.completed",
        "call_sid": call.call_sid,
        "from": call.from_number,
        "to": call.to_number,
        "caller_state": call.caller_state,
        "started_at": _iso(call.started_at),
        "ended_at": _iso(call.ended_at),
        "duration_seconds": view.duration_seconds,
        "status": call.status,
        "end_reason": call.end_reason,
        "outcome": view.outcome.outcome if view.outcome else None,
        "summary": view.summary.text if view.summary else None,
        "cost_usd": str(call_cost_usd(view)),
        "cost_breakdown_usd": {part: str(value) for part, value in cost_parts(view).items()},
        "messages": [
            {
                "message": message.message,
                "caller_name": message.caller_name,
                "callback_number": message.callback_number,
                "at": _iso(message.at),
            }
            for message in view.messages
        ],
        "segments": [
            {
                "segment": segment.segment,
                "model": segment.model,
                "started_at": _iso(segment.started_at),
                "ended_at": _iso(segment.ended_at),
                "end_reason": segment.end_reason,
            }
            for segment in view.segments
        ],
        "transfers": [
            {"segment": attempt.segment, "reason": attempt.reason, "result": attempt.result}
            for attempt in view.transfers
        ],
        "bookings": [
            {"request": tool.arguments, "result": tool.result}
            for tool in view.tools
            if tool.ok and tool.name in BOOKING_TOOLS
        ],
        "tools": [{"name": tool.name, "ok": tool.ok} for tool in view.tools],
        "transcript": [
            {
                "speaker": turn.speaker,
                "text": turn.text,
                "at": _iso(turn.started_at),
                "interrupted": turn.interrupted,
            }
            for turn in view.turns
        ],
    }


def sync_crm(sessions: sessionmaker[Session], settings: Settings, call_sid: str, http: httpx.Client) -> str:
    """Send the call to the CRM once; returns the effect's status (done, skipped)."""
    with sessions() as session:
        status = effect_status(session, call_sid, EFFECT)
        if status in SETTLED:
            return str(status)
        view = load_call_view(session, call_sid)
    if view is None:
        raise PermanentEffectError("unknown call")
    if not settings.crm_webhook_url:
        with sessions.begin() as session:
            settle_effect(session, call_sid, EFFECT, SKIPPED, {"reason": "CRM_WEBHOOK_URL not set"})
        return SKIPPED
    if settings.crm_webhook_secret is None or not settings.crm_webhook_secret.get_secret_value():
        raise PermanentEffectError("CRM_WEBHOOK_SECRET is not set; refusing to send an unsigned CRM request")
    with sessions.begin() as session:
        bump_attempts(session, call_sid, EFFECT)
    body = json.dumps(crm_payload(view), separators=(",", ":"), default=str).encode()
    timestamp = str(int(time.time()))
    headers = {
        "X-Signature-Timestamp": timestamp,
        "X-Signature": sign(settings.crm_webhook_secret.get_secret_value(), timestamp, body),
        "Idempotency-Key": f"{EFFECT}:{call_sid}",
    }
    response = post_json(http, settings.crm_webhook_url, body, headers, what="CRM webhook")
    with sessions.begin() as session:
        settle_effect(session, call_sid, EFFECT, DONE, {"http_status": response.status_code})
    return DONE
