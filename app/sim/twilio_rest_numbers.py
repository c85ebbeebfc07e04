"""The simulated Twilio REST API's IncomingPhoneNumbers: list (filtered by ``PhoneNumber``), fetch, update.

Enough for ``voice-agent twilio configure`` and ``voice-agent doctor`` to find the business's number and
read or change its voice webhooks through the real ``twilio`` SDK. A number may be bound to a TwiML App
(``voice_application_sid``) or a SIP trunk (``trunk_sid``), in which case Twilio ignores its ``voice_url``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.sim.twilio_rest_common import API_PREFIX, Admit, not_found, now_rfc2822
from app.sim.twilio_webhook import new_sid

# Update form fields -> the record's attributes (the subset the product sets or reads).
UPDATABLE_FIELDS = {
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceApplicationSid": "voice_application_sid",
    "TrunkSid": "trunk_sid",
    "FriendlyName": "friendly_name",
}


@dataclass
class SimulatedNumber:
    """A phone number the simulated account owns, with its voice configuration."""

    sid: str
    phone_number: str
    friendly_name: str = ""
    voice_url: str = ""
    voice_method: str = "POST"
    voice_fallback_url: str = ""
    voice_fallback_method: str = "POST"
    status_callback: str = ""
    status_callback_method: str = "POST"
    voice_application_sid: str = ""
    trunk_sid: str | None = None


class NumbersResource:
    """The numbers one simulated account owns, and the routes that read and change them."""

    def __init__(self, account_sid: str, lock: threading.Lock) -> None:
        self.account_sid = account_sid
        self._lock = lock
        self._numbers: dict[str, SimulatedNumber] = {}

    def add(self, phone_number: str, **config: Any) -> SimulatedNumber:
        """Give the account a number (E.164), optionally configured (``voice_url=...``); its record."""
        number = SimulatedNumber(sid=new_sid("PN"), phone_number=phone_number, **config)
        with self._lock:
            self._numbers[number.sid] = number
        return number

    def find(self, phone_number: str) -> SimulatedNumber | None:
        """The record of a number the account owns, or None."""
        with self._lock:
            return next((n for n in self._numbers.values() if n.phone_number == phone_number), None)

    def number_json(self, number: SimulatedNumber) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers/{number.sid}.json"
        now = now_rfc2822()
        return {
            "sid": number.sid,
            "account_sid": self.account_sid,
            "address_requirements": "none",
            "api_version": "2010-04-01",
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now,
            "date_updated": now,
            "friendly_name": number.friendly_name or number.phone_number,
            "phone_number": number.phone_number,
            "origin": "twilio",
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": number.status_callback,
            "status_callback_method": number.status_callback_method,
            "trunk_sid": number.trunk_sid,
            "uri": uri,
            "voice_receive_mode": "voice",
            "voice_application_sid": number.voice_application_sid,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": number.voice_fallback_method,
            "voice_fallback_url": number.voice_fallback_url,
            "voice_method": number.voice_method,
            "voice_url": number.voice_url,
            "emergency_status": "Inactive",
            "status": "in-use",
            "subresource_uris": {},
        }

    def _page_json(self, numbers: list[SimulatedNumber], request: Request) -> dict[str, Any]:
        uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return {
            "incoming_phone_numbers": [self.number_json(number) for number in numbers],
            "end": max(len(numbers) - 1, 0),
            "first_page_uri": uri,
            "next_page_uri": None,
            "page": 0,
            "page_size": 50,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }

    def _update(self, sid: str, form: dict[str, str]) -> JSONResponse:
        with self._lock:
            number = self._numbers.get(sid)
            if number is not None:
                for field_name, attribute in UPDATABLE_FIELDS.items():
                    if field_name in form:
                        setattr(number, attribute, form[field_name])
        if number is None:
            return not_found(sid)
        return JSONResponse(self.number_json(number))

    def register(self, app: FastAPI, admit: Admit) -> None:
        """Add the IncomingPhoneNumbers routes to ``app``."""
        numbers_path = API_PREFIX + "/IncomingPhoneNumbers"

        @app.get(numbers_path + ".json")
        async def list_numbers(account_sid: str, request: Request) -> JSONResponse:
            _, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            wanted = request.query_params.get("PhoneNumber")
            with self._lock:
                numbers = [n for n in self._numbers.values() if wanted in (None, n.phone_number)]
            return JSONResponse(self._page_json(numbers, request))

        @app.get(numbers_path + "/{sid}.json")
        async def fetch_number(account_sid: str, sid: str, request: Request) -> JSONResponse:
            _, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            with self._lock:
                number = self._numbers.get(sid)
            return not_found(sid) if number is None else JSONResponse(self.number_json(number))

        @app.post(numbers_path + "/{sid}.json")
        async def update_number(account_sid: str, sid: str, request: Request) -> JSONResponse:
            form, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            return self._update(sid, form)
