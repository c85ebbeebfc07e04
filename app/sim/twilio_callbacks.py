"""Twilio's side of the callbacks it makes to the relay during a call, for tests and the demo.

Twilio signs every callback over the *public* URL it was given (the relay's `PUBLIC_BASE_URL`), but the
relay under test listens on a loopback address: `post_signed` signs over the public URL and delivers to
the real one. The helpers build the forms Twilio sends (a `<Dial>` ending, the call's final status, a
finished recording) and follow a `<Connect><Stream>` answer with a new caller stream for the same call,
which is what Twilio does when a transfer comes back to the agent; the new stream may go to another relay
instance (`relay_url`).
"""

from __future__ import annotations

import httpx

from app.sim.twilio_caller import SimulatedCaller
from app.sim.twilio_webhook import new_sid, parse_connect_stream, twilio_signature


async def post_signed(
    public_url: str, form: dict[str, str], *, auth_token: str, public_base_url: str, relay_url: str
) -> httpx.Response:
    """POST `form` as Twilio would: signed over `public_url`, delivered to the relay's real address."""
    signature = twilio_signature(auth_token, public_url, form)
    local = relay_url.rstrip("/") + public_url.removeprefix(public_base_url.rstrip("/"))
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        return await http.post(local, data=form, headers={"X-Twilio-Signature": signature})


def dial_ended_form(call_sid: str, status: str) -> dict[str, str]:
    """The `<Dial action>` request: how the hand-off ended (completed, busy, no-answer, failed...)."""
    return {"CallSid": call_sid, "DialCallStatus": status, "CallStatus": "in-progress"}


def call_status_form(call_sid: str, status: str, duration_seconds: int = 0) -> dict[str, str]:
    """The call's StatusCallback request (`completed` once the caller hung up)."""
    return {"CallSid": call_sid, "CallStatus": status, "CallDuration": str(duration_seconds)}


def recording_status_form(
    account_sid: str, call_sid: str, recording_sid: str, duration_seconds: int
) -> dict[str, str]:
    """The RecordingStatusCallback request for a finished recording."""
    url = f"https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}"
    return {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingStatus": "completed",
        "RecordingUrl": url,
        "RecordingDuration": str(duration_seconds),
        "RecordingChannels": "2",
        "RecordingSource": "StartCallRecordingAPI",
    }


def caller_back(caller: SimulatedCaller, twiml: str, *, relay_url: str | None = None) -> SimulatedCaller:
    """The same call's new stream, opened from the `<Connect><Stream>` TwiML the relay answered with."""
    back = SimulatedCaller(
        relay_url=relay_url or caller.relay_url,
        public_base_url=caller.public_base_url,
        auth_token=caller.auth_token,
        account_sid=caller.account_sid,
        from_number=caller.from_number,
        to_number=caller.to_number,
        caller_state=caller.caller_state,
    )
    back.call_sid = caller.call_sid
    back.stream_sid = new_sid("MZ")
    back.twiml = twiml
    back.stream_url, back.parameters = parse_connect_stream(
        twiml, f"{caller.public_base_url}/twilio/incoming"
    )
    return back
