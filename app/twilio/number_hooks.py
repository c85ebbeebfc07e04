"""The number's voice fallback (set by `voice-agent twilio configure`, with the status callback that
app/twilio/status.py serves).

`POST /twilio/fallback` is what Twilio requests when `/twilio/incoming` fails: an error status (a full or
draining relay answers 503 on purpose), a timeout, a refused connection. It answers at once with static
TwiML: an apology, then a `<Dial>` to `HUMAN_TRANSFER_NUMBER` when one is set, else an invitation to call
back. It opens no model session and ignores the capacity and drain checks, which is why a relay that refuses
new calls can still serve it; see app/twilio/number_setup.py for why it lives here and when to override it
with `VOICE_FALLBACK_URL`.

The number's status callback goes to `/twilio/call/status` (app/twilio/status.py): a final status tells
the workers the phone call is over.

It checks Twilio's signature like every other webhook.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import VoiceResponse

from app.logs import get_logger
from app.settings import Settings
from app.twilio.signature import signed_form
from app.twilio.twiml import SAY_VOICE

log = get_logger(__name__)
router = APIRouter()


def fallback_twiml(settings: Settings) -> str:
    """The polite answer for a caller the relay cannot take right now."""
    response = VoiceResponse()
    response.say(
        f"Thanks for calling {settings.business_name}. All our lines are busy at the moment.", voice=SAY_VOICE
    )
    if settings.human_transfer_number:
        response.say("Please hold while I connect you to a person.", voice=SAY_VOICE)
        response.dial(settings.human_transfer_number, timeout=settings.transfer_ring_seconds)
        response.say("Sorry, nobody could take your call. Please call back a little later.", voice=SAY_VOICE)
    else:
        response.say("Please call back in a few minutes. Goodbye.", voice=SAY_VOICE)
    response.hangup()
    return str(response)


@router.post("/twilio/fallback")
async def voice_fallback(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    form = await signed_form(request, settings.public_base_url, settings.auth_token())
    if form is None:
        log.warning("webhook_signature_rejected", path=request.url.path)
        return Response("invalid Twilio signature", status_code=403, media_type="text/plain")
    log.warning("call_fallback", call_sid=form.get("CallSid", ""), error_code=form.get("ErrorCode", ""))
    return Response(fallback_twiml(settings), media_type="application/xml")
