"""Twilio request signatures, for the voice webhook and for the Media Streams WebSocket upgrade.

Twilio signs the URL exactly as it requested it: the public https URL for webhooks, and the wss:// URL written
in our TwiML (with no params) for the upgrade. Both are rebuilt from `PUBLIC_BASE_URL`, never from proxy
headers, so a forwarded Host cannot steer the check. The per-call stream token is a second gate: an HMAC of
the CallSid under the auth token, put in a `<Parameter>` by the webhook and checked when `start` arrives, so
any relay instance can verify a stream without shared state.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from starlette.requests import Request
from twilio.request_validator import RequestValidator


def is_valid_signature(
    auth_token: str, url: str, params: Mapping[str, str] | None, signature: str | None
) -> bool:
    """True when `signature` is Twilio's signature of `url` and `params` under `auth_token`."""
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    return bool(validator.validate(url, dict(params or {}), signature))


async def signed_form(request: Request, public_origin: str | None, auth_token: str) -> dict[str, str] | None:
    """The form if `X-Twilio-Signature` signs it under its public URL (query included), else None."""
    form = {key: str(value) for key, value in (await request.form()).items()}
    url = (public_origin or str(request.base_url).rstrip("/")) + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not is_valid_signature(auth_token, url, form, request.headers.get("x-twilio-signature")):
        return None
    return form


def sign(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's signature for a request; used by the simulators and tests."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params or {})))


def stream_token(auth_token: str, call_sid: str, *bound: str) -> str:
    """The token that binds a media stream to the call (and the caller details) its signed webhook saw."""
    message = "\x1f".join(("stream", call_sid, *bound)).encode()
    return hmac.new(auth_token.encode(), message, hashlib.sha256).hexdigest()[:32]


def is_valid_stream_token(auth_token: str, token: str | None, call_sid: str, *bound: str) -> bool:
    """Constant-time check of a `stream_token`."""
    if not token or not call_sid:
        return False
    return hmac.compare_digest(stream_token(auth_token, call_sid, *bound), token)
