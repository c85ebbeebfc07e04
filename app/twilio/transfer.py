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
relay instance can serve any step. What the URL carries is sealed (`transfer_link`): nothing readable, and a
forged, expired or malformed context gets 400 and a log line.
"""

from __future__ import annotations

import re
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
from app.twilio.transfer_link import TransferContext, TransferLinkError, unseal
from app.twilio.twiml import SAY_VOICE, back_to_agent_twiml, public_url

log = get_logger(__name__)
router = APIRouter()
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
DIAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


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


def _context(request: Request) -> TransferContext | None:
    """The sealed context of this callback's URL, or None (logged) when it is missing or invalid."""
    settings: Settings = request.app.state.settings
    try:
        return unseal(settings.auth_token(), request.query_params.get("ctx"))
    except TransferLinkError as exc:
        log.warning("transfer_context_refused", path=request.url.path, reason=str(exc))
        return None


def _bad_context() -> Response:
    return Response("invalid transfer context", status_code=400, media_type="text/plain")


def _returning_caller(context: TransferContext, call_sid: str, resume: str) -> CallerInfo:
    return CallerInfo(
        call_sid=call_sid,
        from_number=context.from_number,
        to_number=context.to_number,
        caller_state=context.caller_state,
        resume=resume,
        segment=context.segment,
    )


@router.post("/twilio/transfer/whisper")
async def whisper(request: Request) -> Response:
    if await _verified_form(request) is None:
        return Response("invalid Twilio signature", status_code=403)
    context = _context(request)
    if context is None:
        return _bad_context()
    sealed = request.query_params["ctx"]  # the answer step needs the same context (the brief is ignored)
    response = VoiceResponse()
    gather = Gather(
        num_digits=1,
        timeout=8,
        action=public_url(request.app.state.settings, "/twilio/transfer/answer", ctx=sealed),
    )
    gather.say(
        f"Transfer from the virtual receptionist. {context.brief} Press 1 to take the call.", voice=SAY_VOICE
    )
    response.append(gather)
    response.redirect(public_url(request.app.state.settings, "/twilio/transfer/answer", ctx=sealed))
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
    if parent and not CALL_SID.match(parent):
        log.warning("transfer_callback_malformed", path=request.url.path)
        return Response("malformed ParentCallSid", status_code=400, media_type="text/plain")
    if parent:
        context = _context(request)
        if context is None:
            return _bad_context()
        caller = _returning_caller(context, parent, "transfer_declined")
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
    if status not in DIAL_STATUSES or (call_sid and not CALL_SID.match(call_sid)):
        log.warning("transfer_callback_malformed", path=request.url.path, status=status[:20])
        return Response("malformed DialCallStatus or CallSid", status_code=400, media_type="text/plain")
    log.info("transfer_finished", call_sid=call_sid, status=status)
    if not call_sid:
        return _twiml(str(VoiceResponse().hangup()))
    relay: Relay = request.app.state.relay
    context = _context(request)
    if context is None:
        return _bad_context()
    caller = _returning_caller(context, call_sid, f"transfer_{status}")
    relay.sink.emit(_result(call_sid, status, caller))
    if status == "completed":
        return _twiml(str(VoiceResponse().hangup()))
    await relay.prepare_return(caller)
    return _twiml(back_to_agent_twiml(request.app.state.settings, caller, str(request.base_url)))
