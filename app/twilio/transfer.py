"""Warm transfer on Twilio's side: the TwiML that dials a person, the whisper, and the way back.

1. The relay redirects the caller's call to `transfer_twiml`: `<Dial answerOnBridge timeout action=done>`
   with `<Number url=whisper>`. The caller hears ringing.
2. `POST /twilio/transfer/whisper` runs on the person's leg when they answer: a spoken brief and
   "press 1 to take the call" (`<Gather>`); no key falls through to `answer` without digits.
3. `POST /twilio/transfer/answer`: 1 bridges the two. Anything else declines: the caller's call
   (`ParentCallSid`) is redirected back to the agent and the person's leg hangs up.
4. `POST /twilio/transfer/done` is the caller's `<Dial action>`: `completed` means they talked, so hang up;
   busy / no-answer / failed / canceled send the caller back to the agent.
Each result is noted for the attempt's segment (the call record keeps every attempt); the caller's way back
opens a session that knows the conversation, read from the relay's shared history store.
Every request is signature-checked, and everything a step needs travels in its signed URL or form, so any
relay instance can serve any step.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import Gather, VoiceResponse

from app.calls.caller import CallerInfo
from app.calls.events import CallNote
from app.calls.relay import Relay
from app.logs import get_logger
from app.settings import Settings
from app.twilio.rest import TwilioRestError
from app.twilio.signature import signed_form
from app.twilio.twiml import SAY_VOICE, back_to_agent_twiml, public_url

log = get_logger(__name__)
router = APIRouter()


def _result(call_sid: str, status: str, caller: CallerInfo) -> CallNote:
    """How the hand-off ended, for the call record: completed (they talked), busy, no-answer, declined...
    It belongs to the segment that started the transfer, the one before the caller's way back."""
    detail = {"status": status, "segment": max(caller.segment - 1, 1)}
    return CallNote(call_sid=call_sid, at=time.time(), tag="transfer_result", detail=detail)


def _twiml(body: str) -> Response:
    return Response(body, media_type="application/xml")


async def _verified_form(request: Request) -> dict[str, str] | None:
    settings: Settings = request.app.state.settings
    form = await signed_form(request, settings.public_base_url, settings.auth_token())
    if form is None:
        log.warning("transfer_signature_rejected", path=request.url.path)
    return form


def _returning_caller(request: Request, call_sid: str, resume: str) -> CallerInfo:
    query = request.query_params
    return CallerInfo(
        call_sid=call_sid,
        from_number=query.get("from") or None,
        to_number=query.get("to") or None,
        caller_state=query.get("state") or None,
        resume=resume,
        segment=int(query.get("segment", "2") or 2),
    )


@router.post("/twilio/transfer/whisper")
async def whisper(request: Request) -> Response:
    if await _verified_form(request) is None:
        return Response("invalid Twilio signature", status_code=403)
    query = dict(request.query_params)
    brief = query.pop("brief", "")
    response = VoiceResponse()
    gather = Gather(
        num_digits=1,
        timeout=8,
        action=public_url(request.app.state.settings, "/twilio/transfer/answer", **query),
    )
    gather.say(f"Transfer from the virtual receptionist. {brief} Press 1 to take the call.", voice=SAY_VOICE)
    response.append(gather)
    response.redirect(public_url(request.app.state.settings, "/twilio/transfer/answer", **query))
    return _twiml(str(response))


@router.post("/twilio/transfer/answer")
async def answer(request: Request) -> Response:
    form = await _verified_form(request)
    if form is None:
        return Response("invalid Twilio signature", status_code=403)
    if form.get("Digits") == "1":
        return _twiml(str(VoiceResponse().say("Connecting you now.", voice=SAY_VOICE)))
    relay: Relay = request.app.state.relay
    parent = form.get("ParentCallSid", "")
    if parent:
        caller = _returning_caller(request, parent, "transfer_declined")
        relay.sink.emit(_result(parent, "declined", caller))
        await relay.prepare_return(caller)
        twiml = back_to_agent_twiml(request.app.state.settings, caller, str(request.base_url))
        try:
            if relay.rest is not None:
                await relay.rest.redirect_call(parent, twiml)
        except TwilioRestError as exc:
            log.warning("transfer_return_failed", call_sid=parent, status=exc.status)
    response = VoiceResponse()
    response.say("Okay. The caller goes back to the assistant.", voice=SAY_VOICE)
    response.hangup()
    return _twiml(str(response))


@router.post("/twilio/transfer/done")
async def dial_done(request: Request) -> Response:
    form = await _verified_form(request)
    if form is None:
        return Response("invalid Twilio signature", status_code=403)
    status = form.get("DialCallStatus", "failed")
    call_sid = form.get("CallSid", "")
    log.info("transfer_finished", call_sid=call_sid, status=status)
    if not call_sid:
        return _twiml(str(VoiceResponse().hangup()))
    relay: Relay = request.app.state.relay
    caller = _returning_caller(request, call_sid, f"transfer_{status}")
    relay.sink.emit(_result(call_sid, status, caller))
    if status == "completed":
        return _twiml(str(VoiceResponse().hangup()))
    await relay.prepare_return(caller)
    return _twiml(back_to_agent_twiml(request.app.state.settings, caller, str(request.base_url)))
