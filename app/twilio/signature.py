"""Twilio request signatures, for the voice webhook and for the Media Streams WebSocket upgrade.

Twilio signs the URL exactly as it requested it: the public https URL for webhooks, and the wss:// URL written
in our TwiML (with no params) for the upgrade. Both are rebuilt from `PUBLIC_BASE_URL`, never from proxy
headers, so a forwarded Host cannot steer the check. The per-call stream token is a second gate: an HMAC of
the CallSid, the caller details and the time it was issued under the auth token, put in `<Parameter>`s by
the webhook and checked when `start` arrives, so any relay instance can verify a stream without shared state.
It expires `STREAM_TOKEN_TTL_SECONDS` after the webhook, and the relay that binds it refuses it afterwards
(one stream per token), so a captured `start` cannot be replayed to open a paid model session.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request
from twilio.request_validator import RequestValidator

from app.logs import get_logger

log = get_logger(__name__)
# Twilio's webhooks carry a few dozen short fields; these bound what a forged form can make us parse.
MAX_FORM_FIELDS = 100
MAX_FIELD_NAME_CHARS = 64
MAX_FIELD_VALUE_CHARS = 2048


def is_valid_signature(
    auth_token: str, url: str, params: Mapping[str, str] | None, signature: str | None
) -> bool:
    """True when `signature` is Twilio's signature of `url` and `params` under `auth_token`."""
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    return bool(validator.validate(url, dict(params or {}), signature))


def parse_webhook_form(body: bytes) -> dict[str, str]:
    """Twilio's url-encoded form, with tight limits; `ValueError` for anything Twilio would never send.

    The body itself is already capped (`RequestGuard`); this bounds the work and the field sizes.
    """
    pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    for name, value in pairs:
        if len(name) > MAX_FIELD_NAME_CHARS or len(value) > MAX_FIELD_VALUE_CHARS:
            raise ValueError("form field too long")
    return dict(pairs)


async def signed_form(request: Request, public_origin: str | None, auth_token: str) -> dict[str, str] | None:
    """The form if `X-Twilio-Signature` signs it under its public URL (query included), else None."""
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", ""):
        log.warning("webhook_form_refused", reason="content type", path=request.url.path)
        return None
    try:
        form = parse_webhook_form(await request.body())
    except ValueError as exc:  # UnicodeDecodeError included
        log.warning("webhook_form_refused", reason=str(exc)[:80], path=request.url.path)
        return None
    url = (public_origin or str(request.base_url).rstrip("/")) + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not is_valid_signature(auth_token, url, form, signature):
        return None
    return form


def sign(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's signature for a request; used by the simulators and tests."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params or {})))


def stream_token(auth_token: str, call_sid: str, *bound: str) -> str:
    """The token that binds a media stream to the call (and the caller details) its signed webhook saw."""
    message = "\x1f".join(("stream", call_sid, *bound)).encode()
    return hmac.new(auth_token.encode(), message, hashlib.sha256).hexdigest()[:32]


def stream_token_is_fresh(issued: str | None, ttl_seconds: float, now: float) -> bool:
    """True when a token issued at `issued` (unix seconds, as written by the webhook) has not expired.

    A few seconds in the future are allowed for clock skew between relay instances.
    """
    if not issued or not issued.isdigit() or len(issued) > 12:
        return False
    age = now - int(issued)
    return -5 <= age <= ttl_seconds


def is_valid_stream_token(auth_token: str, token: str | None, call_sid: str, *bound: str) -> bool:
    """Constant-time check of a `stream_token`."""
    if not token or not call_sid:
        return False
    return hmac.compare_digest(stream_token(auth_token, call_sid, *bound), token)
