"""TwiML the relay hands Twilio: the stream to the agent, the warm transfer, and the apology."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from app.calls.caller import CallerInfo
from app.settings import Settings
from app.twilio.signature import stream_token
from app.twilio.transfer_link import TransferContext, seal

SAY_VOICE = "Polly.Joanna"
CALL_STATUS_PATH = "/twilio/call/status"
RECORDING_STATUS_PATH = "/twilio/recording/status"


def stream_parameters(
    auth_token: str, caller: CallerInfo, *, issued_at: float | None = None
) -> dict[str, str]:
    """The `<Parameter>`s that come back in `start.customParameters`, with a token binding them all.

    `issued` (unix seconds) is signed with the rest, so the token expires (`STREAM_TOKEN_TTL_SECONDS`) and
    each webhook's token differs from the last one's: the relay accepts a token for one stream only.
    """
    params = {
        "callSid": caller.call_sid,
        "from": caller.from_number or "",
        "to": caller.to_number or "",
        "callerState": caller.caller_state or "",
    }
    if caller.resume:
        params["resume"] = caller.resume
        params["segment"] = str(caller.segment)
    params["issued"] = str(int(time.time() if issued_at is None else issued_at))
    params["token"] = stream_token(auth_token, *bound_values(params))
    return params


def bound_values(params: dict[str, str]) -> list[str]:
    """What the stream token signs: every parameter but the token, in a fixed order."""
    return [f"{key}={value}" for key, value in sorted(params.items()) if key != "token"]


def connect_twiml(stream_url: str, params: dict[str, str]) -> str:
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in params.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def public_url(settings: Settings, path: str, **query: str | int) -> str:
    base = settings.public_base_url or ""
    return base + path + ("?" + urlencode(query) if query else "")


def _transfer_context(caller: CallerInfo, brief: str = "") -> TransferContext:
    return TransferContext(
        from_number=caller.from_number,
        to_number=caller.to_number,
        caller_state=caller.caller_state,
        segment=caller.segment + 1,
        brief=brief,
    )


def transfer_twiml(settings: Settings, caller: CallerInfo, number: str, brief: str) -> str:
    """The caller's new TwiML: ring the person, whisper the brief to them, come back on failure.

    The callback URLs carry one sealed parameter (`ctx`, see `transfer_link`): no number, state or brief
    is readable in them.
    """
    token = settings.auth_token()
    response = VoiceResponse()
    dial = Dial(
        action=public_url(settings, "/twilio/transfer/done", ctx=seal(token, _transfer_context(caller))),
        answer_on_bridge=True,
        timeout=settings.transfer_ring_seconds,
    )
    whisper_context = seal(token, _transfer_context(caller, brief))
    dial.number(number, url=public_url(settings, "/twilio/transfer/whisper", ctx=whisper_context))
    response.append(dial)
    return str(response)


def apology_twiml(settings: Settings, number: str | None) -> str:
    """When the model is unavailable: a spoken apology, then a person if one is configured."""
    response = VoiceResponse()
    if number:
        response.say("Sorry, I'm having trouble on my end. Let me connect you with someone.", voice=SAY_VOICE)
        response.dial(number, timeout=settings.transfer_ring_seconds, answer_on_bridge=True)
    response.say(
        "Sorry, we can't take your call right now. Please call again later. Goodbye.", voice=SAY_VOICE
    )
    response.hangup()
    return str(response)


def caller_limit_twiml(settings: Settings) -> str:
    """A caller over their call limit: a polite no, and a person if one is configured."""
    response = VoiceResponse()
    response.say(
        "Sorry, you have reached the limit of calls we can take from your number right now.", voice=SAY_VOICE
    )
    if settings.human_transfer_number:
        response.say("Let me connect you with someone.", voice=SAY_VOICE)
        response.dial(
            settings.human_transfer_number, timeout=settings.transfer_ring_seconds, answer_on_bridge=True
        )
    response.say("Please call again later. Goodbye.", voice=SAY_VOICE)
    response.hangup()
    return str(response)


def back_to_agent_twiml(settings: Settings, caller: CallerInfo, origin: str) -> str:
    """A new stream to the agent for a caller whose transfer did not connect."""
    return connect_twiml(settings.stream_url(origin), stream_parameters(settings.auth_token(), caller))
