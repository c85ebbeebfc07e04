"""The number's fallback URL and status callback, served by the real relay."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

from app.sim.harness import PUBLIC_BASE_URL, LocalStack, local_stack
from app.sim.twilio_webhook import new_sid
from app.twilio.signature import sign

HUMAN = "+15557654321"


async def _post_signed(stack: LocalStack, path: str, form: dict[str, str]) -> httpx.Response:
    signature = sign(stack.settings.auth_token(), PUBLIC_BASE_URL + path, form)
    async with httpx.AsyncClient(base_url=stack.relay_url, timeout=5, trust_env=False) as client:
        return await client.post(path, data=form, headers={"X-Twilio-Signature": signature})


async def test_a_draining_relay_refuses_the_call_but_its_fallback_connects_a_person() -> None:
    async with local_stack(settings_overrides={"human_transfer_number": HUMAN}) as stack:
        stack.relay.draining = True
        form = {"CallSid": new_sid("CA"), "From": "+14155550100", "To": "+14155550199"}

        refused = await _post_signed(stack, "/twilio/incoming", form)
        fallback = await _post_signed(stack, "/twilio/fallback", {**form, "ErrorCode": "11200"})

        assert refused.status_code == 503
        assert fallback.status_code == 200 and fallback.headers["content-type"].startswith("application/xml")
        twiml = ET.fromstring(fallback.text)
        said = " ".join(say.text or "" for say in twiml.iter("Say"))
        assert stack.settings.business_name in said and "busy" in said
        dial = twiml.find("Dial")
        assert dial is not None and (dial.text or "").strip() == HUMAN
        assert stack.relay.calls == {}  # no model session was opened for it


async def test_without_a_human_number_the_fallback_apologises_and_hangs_up() -> None:
    async with local_stack() as stack:
        response = await _post_signed(stack, "/twilio/fallback", {"CallSid": new_sid("CA")})

        twiml = ET.fromstring(response.text)
        assert twiml.find("Dial") is None and twiml.find("Hangup") is not None
        assert "call back" in " ".join(say.text or "" for say in twiml.iter("Say"))


async def test_unsigned_fallback_and_status_requests_are_refused() -> None:
    async with local_stack() as stack:
        async with httpx.AsyncClient(base_url=stack.relay_url, timeout=5, trust_env=False) as client:
            fallback = await client.post("/twilio/fallback", data={"CallSid": new_sid("CA")})
            status = await client.post("/twilio/call/status", data={"CallSid": new_sid("CA")})
        assert fallback.status_code == 403 and status.status_code == 403


async def test_status_callback_is_accepted() -> None:
    async with local_stack() as stack:
        form = {"CallSid": new_sid("CA"), "CallStatus": "completed", "CallDuration": "42"}
        response = await _post_signed(stack, "/twilio/call/status", form)
        assert response.status_code == 204
