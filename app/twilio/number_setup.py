"""Pointing the business's Twilio number at this relay (`voice-agent twilio configure`, and `doctor`).

The number in `TWILIO_PHONE_NUMBER` is found with `IncomingPhoneNumbers?PhoneNumber=...` and given three
webhooks, all HTTP POST:

- voice URL `PUBLIC_BASE_URL/twilio/incoming`: every call starts there;
- voice fallback URL: what Twilio requests when the voice URL answers an error or does not answer in time.
  A full or draining relay answers 503 on purpose, so without a fallback those callers hear Twilio's
  "application error". The default is `PUBLIC_BASE_URL/twilio/fallback` (app/twilio/number_hooks.py): a
  route that costs nothing (no model session, no capacity check), so a relay machine that refuses new calls
  still answers it, and on Fly the proxy sends the retry to any machine that is up. It cannot help when no
  relay machine answers at all; `VOICE_FALLBACK_URL` overrides it with a URL hosted elsewhere (a TwiML Bin,
  a static file) for that case;
- status callback `PUBLIC_BASE_URL/twilio/call/status`: Twilio reports how every call ended (a final
  status tells the workers the phone call is over; calls the relay never held change nothing).

A number bound to a TwiML App (`voice_application_sid`) or a SIP trunk (`trunk_sid`) ignores its voice URL,
so it is refused with an explanation rather than "configured" to no effect. Requests go through the real
`twilio` SDK, whose 2010-04-01 API follows `TWILIO_API_BASE_URL` (as app/twilio/rest.py does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.settings import MissingSettingError, Settings
from app.twilio.twiml import CALL_STATUS_PATH

VOICE_PATH = "/twilio/incoming"
FALLBACK_PATH = "/twilio/fallback"
STATUS_PATH = CALL_STATUS_PATH
REQUEST_TIMEOUT_SECONDS = 10.0
# The record's fields we set, in the order they are printed.
WEBHOOK_FIELDS = (
    "voice_url",
    "voice_method",
    "voice_fallback_url",
    "voice_fallback_method",
    "status_callback",
    "status_callback_method",
)


class NumberSetupError(RuntimeError):
    """The number cannot be (or was not) pointed at the relay; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Change:
    """One webhook field of the number: its value on Twilio and the value the relay needs."""

    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """What pointing one number at the relay takes (empty `changes`: it already points here)."""

    number_sid: str
    phone_number: str
    changes: tuple[Change, ...]

    def update_arguments(self) -> dict[str, str]:
        """Keyword arguments for the SDK's `IncomingPhoneNumberContext.update`."""
        return {change.field: change.new for change in self.changes}


def wanted_webhooks(settings: Settings) -> dict[str, str]:
    """The webhook fields the number must carry for this relay."""
    base = settings.public_base_url
    if not base:
        raise MissingSettingError("PUBLIC_BASE_URL", "Twilio needs the relay's public https origin")
    return {
        "voice_url": base + VOICE_PATH,
        "voice_method": "POST",
        "voice_fallback_url": settings.voice_fallback_url or base + FALLBACK_PATH,
        "voice_fallback_method": "POST",
        "status_callback": base + STATUS_PATH,
        "status_callback_method": "POST",
    }


def twilio_client(settings: Settings, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Client:
    """A `twilio` SDK client for the account in settings, its 2010-04-01 API at `TWILIO_API_BASE_URL`."""
    if not settings.twilio_account_sid:
        raise MissingSettingError("TWILIO_ACCOUNT_SID", "needed to reach Twilio's REST API")
    http_client = TwilioHttpClient(timeout=timeout)
    client = Client(settings.twilio_account_sid, settings.auth_token(), http_client=http_client)
    client.api.base_url = settings.twilio_api_base_url
    return client


def find_number(client: Client, phone_number: str) -> Any:
    """The account's record of `phone_number` (an `IncomingPhoneNumberInstance`)."""
    try:
        records = client.incoming_phone_numbers.list(phone_number=phone_number, limit=2)
    except (TwilioException, OSError) as exc:  # requests' errors are OSErrors
        raise NumberSetupError(describe_twilio_failure(exc)) from None
    if not records:
        raise NumberSetupError(
            f"the account has no number {phone_number} (check TWILIO_PHONE_NUMBER, in E.164 form such as "
            "+14155550123, and that TWILIO_ACCOUNT_SID is the account that owns it)"
        )
    return records[0]


def describe_twilio_failure(exc: BaseException) -> str:
    """One line about a failed Twilio request, without credentials."""
    status: int | None = None
    if isinstance(exc, TwilioRestException):
        status = exc.status
    elif isinstance(exc, TwilioException) and len(exc.args) > 1:
        # A list request's failure carries the raw response instead ("Unable to fetch page", response).
        status = getattr(exc.args[1], "status_code", None)
    if status == 401:
        return "Twilio refused the credentials (HTTP 401): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    if status is not None:
        return f"Twilio answered HTTP {status}"
    return f"Twilio could not be reached ({type(exc).__name__}); check TWILIO_API_BASE_URL and the network"


def bound_elsewhere(record: Any) -> str | None:
    """Why Twilio would ignore this number's voice URL, or None if it uses it."""
    if record.voice_application_sid:
        return (
            f"is bound to the TwiML App {record.voice_application_sid}, so Twilio ignores its voice URL; "
            "unbind it in the console (Voice configuration: Webhook) or point the App's voice URL here"
        )
    if record.trunk_sid:
        return (
            f"belongs to the SIP trunk {record.trunk_sid}, so Twilio ignores its voice URL; "
            "remove it from the trunk first"
        )
    return None


def plan_number(record: Any, wanted: dict[str, str]) -> NumberPlan:
    """What to change on `record` so it points at the relay; refuses a number bound to an app or trunk."""
    why = bound_elsewhere(record)
    if why is not None:
        raise NumberSetupError(f"{record.phone_number} {why}")
    changes = tuple(
        Change(name, str(getattr(record, name) or ""), wanted[name])
        for name in WEBHOOK_FIELDS
        if (getattr(record, name) or "") != wanted[name]
    )
    return NumberPlan(record.sid, record.phone_number, changes)


def apply_plan(client: Client, plan: NumberPlan) -> None:
    """Send the changes to Twilio (nothing when the number already points here)."""
    if not plan.changes:
        return
    try:
        client.incoming_phone_numbers(plan.number_sid).update(**plan.update_arguments())
    except (TwilioException, OSError) as exc:  # requests' errors are OSErrors
        raise NumberSetupError(describe_twilio_failure(exc)) from None


def configure_number(settings: Settings, *, dry_run: bool) -> NumberPlan:
    """Find `TWILIO_PHONE_NUMBER` and point its webhooks at the relay (or, with `dry_run`, only plan it)."""
    if not settings.twilio_phone_number:
        raise MissingSettingError("TWILIO_PHONE_NUMBER", "the number to point at the relay")
    wanted = wanted_webhooks(settings)
    if not wanted["voice_url"].startswith("https://"):
        # An http origin would also give a ws:// media stream: callers' audio unencrypted on the internet.
        raise NumberSetupError(
            "PUBLIC_BASE_URL must be an https origin for a real number (a tunnel gives one)"
        )
    client = twilio_client(settings)
    plan = plan_number(find_number(client, settings.twilio_phone_number), wanted)
    if not dry_run:
        apply_plan(client, plan)
    return plan
