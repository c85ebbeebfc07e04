"""`POST /twilio/incoming`: the voice webhook of the business's number.

Checks Twilio's signature (403 and nothing started otherwise), opens the model session for the call at once
so the greeting is generated while Twilio sets up the stream, and answers with `<Connect><Stream>` TwiML
whose `<Parameter>`s bind the stream to this call (trap 14: no query string on the stream URL).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from app.calls.caller import CallerInfo
from app.calls.caller_limits import CallerLimits
from app.calls.relay import Relay
from app.logs import bind_call_sid, get_logger, mask_number
from app.settings import Settings
from app.twilio.signature import signed_form
from app.twilio.twiml import caller_limit_twiml, connect_twiml, stream_parameters

log = get_logger(__name__)
router = APIRouter()
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


def caller_from_form(form: dict[str, str]) -> CallerInfo:
    """The call's identity and caller details from Twilio's webhook parameters."""
    return CallerInfo(
        call_sid=form["CallSid"],
        from_number=form.get("From") or form.get("Caller") or None,
        to_number=form.get("To") or form.get("Called") or None,
        caller_state=(form.get("FromState") or form.get("CallerState") or "").upper() or None,
    )


@router.post("/twilio/incoming")
async def incoming_call(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    relay: Relay = request.app.state.relay
    form = await signed_form(request, settings.public_base_url, settings.auth_token())
    if form is None:
        log.warning("webhook_signature_rejected", path=request.url.path)
        return Response("invalid Twilio signature", status_code=403, media_type="text/plain")
    if not _CALL_SID.match(form.get("CallSid", "")):
        return Response("missing or malformed CallSid", status_code=400, media_type="text/plain")
    if relay.draining or relay.at_capacity:
        # Twilio follows the number's fallback URL on a 503 (another instance answers). A full relay says no
        # rather than let every call on it fall behind real time.
        log.warning("call_refused", draining=relay.draining, calls=len(relay.calls))
        return Response(
            "draining" if relay.draining else "at capacity", status_code=503, media_type="text/plain"
        )
    caller = caller_from_form(form)
    bind_call_sid(caller.call_sid)  # the call's tasks start here and inherit it
    limits: CallerLimits = request.app.state.caller_limits
    if refusal := await limits.admit(caller.call_sid, caller.from_number):
        log.warning("call_refused_caller_limit", call_sid=caller.call_sid, limit=refusal)
        return Response(caller_limit_twiml(settings), media_type="application/xml")
    limits.release_when_ended(caller.call_sid, relay.prepare(caller).ended)
    log.info("call_incoming", call_sid=caller.call_sid, caller=mask_number(caller.from_number))
    twiml = connect_twiml(
        settings.stream_url(str(request.base_url)), stream_parameters(settings.auth_token(), caller)
    )
    return Response(twiml, media_type="application/xml")
