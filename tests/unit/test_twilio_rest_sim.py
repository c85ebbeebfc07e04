"""The simulated Twilio REST API, driven by the real ``twilio`` SDK pointed at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.twiml.voice_response import Dial, VoiceResponse

from app.sim.twilio_rest import SimulatedTwilioRest, new_sid, twilio_client_for

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "rest-test-token"


@pytest.fixture
def twilio_api() -> Iterator[SimulatedTwilioRest]:
    with SimulatedTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as sim:
        yield sim


def test_sdk_redirects_a_live_call_with_twiml(twilio_api: SimulatedTwilioRest) -> None:
    call_sid = new_sid("CA")
    twilio_api.add_call(call_sid)
    response = VoiceResponse()
    response.say("Connecting you now.")
    response.append(Dial("+14155550123", timeout=20))
    client = twilio_client_for(twilio_api.base_url, ACCOUNT_SID, AUTH_TOKEN)

    call = client.calls(call_sid).update(twiml=str(response))

    assert call.sid == call_sid and call.status == "in-progress" and call.account_sid == ACCOUNT_SID
    recorded = twilio_api.requests[-1]
    assert recorded.method == "POST"
    assert recorded.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json"
    assert recorded.form["Twiml"] == str(response)


def test_completing_a_call_changes_its_fetched_status(twilio_api: SimulatedTwilioRest) -> None:
    call_sid = new_sid("CA")
    twilio_api.add_call(call_sid)
    client = twilio_client_for(twilio_api.base_url, ACCOUNT_SID, AUTH_TOKEN)

    client.calls(call_sid).update(status="completed")

    assert client.calls(call_sid).fetch().status == "completed"
    assert twilio_api.requests[0].form == {"Status": "completed"}


def test_unknown_call_is_a_20404_the_sdk_raises(twilio_api: SimulatedTwilioRest) -> None:
    client = twilio_client_for(twilio_api.base_url, ACCOUNT_SID, AUTH_TOKEN)
    with pytest.raises(TwilioRestException) as raised:
        client.calls(new_sid("CA")).update(status="completed")
    assert raised.value.status == 404 and raised.value.code == 20404


def test_wrong_credentials_are_refused(twilio_api: SimulatedTwilioRest) -> None:
    call_sid = new_sid("CA")
    twilio_api.add_call(call_sid)
    for account_sid, token in [(ACCOUNT_SID, "wrong"), ("AC" + "2" * 32, AUTH_TOKEN)]:
        client = twilio_client_for(twilio_api.base_url, account_sid, token)
        with pytest.raises(TwilioRestException) as raised:
            client.calls(call_sid).fetch()
        assert raised.value.status == 401 and raised.value.code == 20003


def test_create_call_recording_and_conference_participant(twilio_api: SimulatedTwilioRest) -> None:
    client = twilio_client_for(twilio_api.base_url, ACCOUNT_SID, AUTH_TOKEN)

    created = client.calls.create(
        to="+14155550123",
        from_="+14155550199",
        twiml="<Response><Say>Summary</Say></Response>",
        status_callback="https://voice.example.com/twilio/call/status",
        status_callback_event=["initiated", "completed"],
    )
    recording = client.calls(created.sid).recordings.create(recording_channels="dual")
    participant = client.conferences("room-CA1").participants.create(
        from_="+14155550199", to="+14155550123", label="agent", early_media=True
    )
    again = client.conferences("room-CA1").participants.create(from_="+14155550199", to="+14155550124")

    assert created.sid.startswith("CA") and created.status == "queued" and created.to == "+14155550123"
    assert created.direction == "outbound-api"
    assert recording.sid.startswith("RE") and recording.call_sid == created.sid and recording.channels == 2
    assert participant.conference_sid.startswith("CF") and participant.label == "agent"
    assert again.conference_sid == participant.conference_sid and again.call_sid != participant.call_sid
    create_form = twilio_api.requests[0]
    assert create_form.multi["StatusCallbackEvent"] == ["initiated", "completed"]
    assert create_form.form["Twiml"].startswith("<Response>")
    assert twilio_api.requests[2].path.endswith("/Conferences/room-CA1/Participants.json")


def test_failure_and_delay_knobs(twilio_api: SimulatedTwilioRest) -> None:
    call_sid = new_sid("CA")
    twilio_api.add_call(call_sid)
    client = twilio_client_for(twilio_api.base_url, ACCOUNT_SID, AUTH_TOKEN)

    twilio_api.set_failure(500, times=1)
    with pytest.raises(TwilioRestException) as raised:
        client.calls(call_sid).fetch()
    assert raised.value.status == 500
    assert client.calls(call_sid).fetch().sid == call_sid

    twilio_api.set_delay(0.3)
    started = time.perf_counter()
    client.calls(call_sid).fetch()
    assert time.perf_counter() - started >= 0.3
    assert len(twilio_api.requests) == 3


async def test_async_sdk_client_and_set_status(twilio_api: SimulatedTwilioRest) -> None:
    call_sid = new_sid("CA")
    twilio_api.add_call(call_sid)
    twilio_api.set_status(call_sid, "completed")
    http_client = AsyncTwilioHttpClient()
    client = twilio_client_for(twilio_api.base_url, ACCOUNT_SID, AUTH_TOKEN, http_client=http_client)
    try:
        fetched = await client.calls(call_sid).fetch_async()
        await client.calls(call_sid).update_async(twiml="<Response><Hangup/></Response>")
    finally:
        await http_client.close()
    assert fetched.status == "completed"
    found = await twilio_api.wait_for_request(lambda r: "Twiml" in r.form, timeout=1)
    assert found.path.endswith(f"/Calls/{call_sid}.json")


class _LinkedCaller:
    def __init__(self) -> None:
        self.call_sid = new_sid("CA")
        self.hung_up = asyncio.Event()

    async def hang_up(self) -> None:
        self.hung_up.set()


async def test_a_twiml_update_ends_the_linked_callers_stream(twilio_api: SimulatedTwilioRest) -> None:
    caller = _LinkedCaller()
    twilio_api.link_caller(caller)
    client = twilio_client_for(twilio_api.base_url, ACCOUNT_SID, AUTH_TOKEN)

    await asyncio.to_thread(
        client.calls(caller.call_sid).update, twiml="<Response><Dial>+1</Dial></Response>"
    )

    await asyncio.wait_for(caller.hung_up.wait(), 2)
    call = twilio_api.call(caller.call_sid)
    assert call is not None and call.status == "in-progress"
