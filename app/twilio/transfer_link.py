"""What a warm transfer's callbacks need to know, sealed into one opaque URL parameter.

The callbacks (`/twilio/transfer/whisper|answer|done`) may reach any relay instance, so what they need (the
caller's details for the way back, the call segment, the brief whispered to the person) travels in their
URLs. URLs end up in logs (Twilio's, proxies', ours), so nothing in them may be readable: the context is
encrypted and authenticated (Fernet: AES-128-CBC + HMAC-SHA256, with its issue time) under a key derived
from the Twilio auth token, and refused once `TRANSFER_LINK_TTL_SECONDS` old. A Twilio signature still
guards each request; this seal keeps the content private and a captured URL short-lived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

from cryptography.fernet import Fernet, InvalidToken

# Longer than any ring (TRANSFER_RING_SECONDS <= 60) plus the whisper and its key press; a `done` callback
# for a call that was bridged and then ended needs no context, however late it comes.
TRANSFER_LINK_TTL_SECONDS = 900
MAX_SEGMENT = 100
_FIELD_LIMITS = {"from_number": 32, "to_number": 32, "caller_state": 8, "brief": 1500}


class TransferLinkError(ValueError):
    """A transfer context that is malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class TransferContext:
    """The caller's details for the way back to the agent, and the brief for the person."""

    from_number: str | None
    to_number: str | None
    caller_state: str | None
    segment: int  # the call segment the caller comes back as (2 after the first transfer)
    brief: str = ""


def _fernet(auth_token: str) -> Fernet:
    key = hmac.new(auth_token.encode(), b"voice-agent transfer link", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(auth_token: str, context: TransferContext) -> str:
    """The context as an opaque, URL-safe token."""
    payload = json.dumps(asdict(context), separators=(",", ":")).encode()
    return _fernet(auth_token).encrypt(payload).decode("ascii")


def unseal(
    auth_token: str, token: str | None, *, ttl_seconds: int = TRANSFER_LINK_TTL_SECONDS
) -> TransferContext:
    """The context sealed in `token`; `TransferLinkError` if it is missing, forged, expired or malformed."""
    if not token:
        raise TransferLinkError("missing transfer context")
    try:
        payload = json.loads(_fernet(auth_token).decrypt(token.encode("ascii"), ttl=ttl_seconds))
    except (InvalidToken, UnicodeEncodeError, ValueError) as exc:
        raise TransferLinkError("invalid or expired transfer context") from exc
    if not isinstance(payload, dict):
        raise TransferLinkError("malformed transfer context")
    segment = payload.get("segment")
    if not isinstance(segment, int) or isinstance(segment, bool) or not 1 < segment <= MAX_SEGMENT:
        raise TransferLinkError("malformed segment")
    fields: dict[str, str | None] = {}
    for name, limit in _FIELD_LIMITS.items():
        value = payload.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise TransferLinkError(f"malformed {name}")
        fields[name] = value
    return TransferContext(
        from_number=fields["from_number"],
        to_number=fields["to_number"],
        caller_state=fields["caller_state"],
        segment=segment,
        brief=fields["brief"] or "",
    )
