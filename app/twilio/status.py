"""Twilio's status callbacks: the call's status (its final one says the phone call is over) and the
recording's (where it is stored and how long it runs).

The relay asks for them itself: `StatusCallback` on the REST redirect that starts a transfer (a call handed
to a person may end without the agent ever hearing of it again), and `RecordingStatusCallback` when it starts
a recording. A number's own voice status callback may point at `/twilio/call/status` too. Every request is
signature-checked (403 otherwise); what it says goes to the workers as a call event, never to the logs.
"""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Request, Response

from app.calls.events import CallStatus, RecordingStatus
from app.calls.relay import Relay
from app.logs import get_logger
from app.settings import Settings
from app.twilio.signature import signed_form
from app.twilio.twiml import CALL_STATUS_PATH, RECORDING_STATUS_PATH

log = get_logger(__name__)
router = APIRouter()
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")
_STATUS = re.compile(r"^[a-z-]{3,16}$")
_RECORDING_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?/[\w./-]*$")


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86_400 else None


async def _verified(request: Request) -> dict[str, str] | None:
    settings: Settings = request.app.state.settings
    form = await signed_form(request, settings.public_base_url, settings.auth_token())
    if form is None:
        log.warning("status_signature_rejected", path=request.url.path)
    return form


@router.post(CALL_STATUS_PATH)
async def call_status(request: Request) -> Response:
    form = await _verified(request)
    if form is None:
        return Response("invalid Twilio signature", status_code=403)
    call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
    if not _CALL_SID.match(call_sid) or not _STATUS.match(status):
        return Response("missing or malformed CallSid or CallStatus", status_code=400)
    relay: Relay = request.app.state.relay
    duration = _seconds(form.get("CallDuration"))
    relay.sink.emit(CallStatus(call_sid=call_sid, at=time.time(), status=status, duration_seconds=duration))
    log.info("call_status", call_sid=call_sid, status=status)
    return Response(status_code=204)


@router.post(RECORDING_STATUS_PATH)
async def recording_status(request: Request) -> Response:
    form = await _verified(request)
    if form is None:
        return Response("invalid Twilio signature", status_code=403)
    call_sid, recording_sid = form.get("CallSid", ""), form.get("RecordingSid", "")
    status = form.get("RecordingStatus", "")
    if not _CALL_SID.match(call_sid) or not _RECORDING_SID.match(recording_sid) or not _STATUS.match(status):
        return Response("missing or malformed CallSid, RecordingSid or RecordingStatus", status_code=400)
    url = form.get("RecordingUrl") or None
    if url is not None and not _RECORDING_URL.match(url):
        url = None  # only a plain https URL is stored
    relay: Relay = request.app.state.relay
    relay.sink.emit(
        RecordingStatus(
            call_sid=call_sid,
            recording_sid=recording_sid,
            status=status,
            at=time.time(),
            url=url,
            duration_seconds=_seconds(form.get("RecordingDuration")),
        )
    )
    log.info("recording_status", call_sid=call_sid, status=status)
    return Response(status_code=204)
