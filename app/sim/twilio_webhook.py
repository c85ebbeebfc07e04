"""Call setup as Twilio does it over HTTP: the inbound-call form, request signatures, reading the TwiML.

Pure helpers for the simulated caller (PROTOCOLS.md B3, B4, trap 14). Signatures use the ``twilio`` SDK's
own ``RequestValidator`` so the simulator signs exactly what the relay will verify.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from urllib.parse import urljoin, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator


class CallerError(RuntimeError):
    """The relay did not behave like something Twilio could talk to."""


class WebhookRejected(CallerError):
    """The voice webhook answered with a non-2xx status."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"voice webhook answered HTTP {status_code}: {body[:200]}")
        self.status_code = status_code
        self.body = body


def new_sid(prefix: str) -> str:
    """A Twilio-style sid: two-letter prefix + 32 hex digits."""
    return prefix + secrets.token_hex(16)


def incoming_call_form(
    *,
    call_sid: str,
    account_sid: str,
    from_number: str,
    to_number: str,
    caller_state: str | None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The form Twilio posts to the Voice URL for a new inbound call; ``extra`` adds or overrides fields."""
    form = {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": from_number,
        "To": to_number,
        "Caller": from_number,
        "Called": to_number,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        "FromCountry": "US",
        "CallerCountry": "US",
        "ToCountry": "US",
        "CalledCountry": "US",
    }
    if caller_state:
        form |= {"FromState": caller_state, "CallerState": caller_state}
    return form | (extra or {})


def twilio_signature(auth_token: str, url: str, params: dict[str, str], *, forge: bool = False) -> str:
    """``X-Twilio-Signature`` for ``url`` + ``params``; ``forge`` signs with a wrong token."""
    token = f"forged-{auth_token}" if forge else auth_token
    signature: str = RequestValidator(token).compute_signature(url, params)
    return signature


def parse_connect_stream(twiml: str, webhook_url: str) -> tuple[str, dict[str, str]]:
    """The ``<Connect><Stream>`` URL (made absolute and ws-schemed as Twilio would) and its Parameters."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise CallerError(f"webhook answer is not XML: {twiml[:200]!r}") from exc
    stream = root.find("./Connect/Stream")
    if root.tag != "Response" or stream is None or not stream.get("url"):
        raise CallerError(f"TwiML has no <Connect><Stream url=...>: {twiml[:300]!r}")
    parts = urlsplit(urljoin(webhook_url, stream.get("url", "")))
    url = urlunsplit(parts._replace(scheme={"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)))
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return url, parameters


def rehome_stream_url(stream_url: str, relay_url: str) -> str:
    """The TwiML stream URL moved onto the relay's real address (ws:// for http://), path kept."""
    relay = urlsplit(relay_url)
    scheme = "wss" if relay.scheme == "https" else "ws"
    return urlunsplit(urlsplit(stream_url)._replace(scheme=scheme, netloc=relay.netloc))
