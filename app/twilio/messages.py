"""Twilio Media Streams frames: parsing what Twilio sends and building what we send back.

Pure functions, no I/O. Parsing is strict about shape (a malformed frame raises `FrameError`, which the
stream handler logs and survives) and cheap on the per-frame path: media payloads stay base64 so mu-law can
pass through to the model without a decode/encode round trip; they are only checked for valid base64.
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MULAW_BYTES_PER_MS = 8


class FrameError(ValueError):
    """A frame that is not valid Media Streams JSON; the connection survives it."""


@dataclass(frozen=True, slots=True)
class Connected:
    pass


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"


@dataclass(frozen=True, slots=True)
class Media:
    payload_b64: str
    payload_bytes: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str | None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    event: str


Frame = Connected | Start | Media | Mark | Dtmf | Stop | UnknownEvent


def base64_decoded_length(b64: str) -> int:
    """Bytes a base64 string decodes to, computed from its length without decoding it."""
    length = len(b64)
    if length == 0:
        return 0
    padding = 2 if b64.endswith("==") else 1 if b64.endswith("=") else 0
    return length * 3 // 4 - padding


def _checked_base64(payload: object) -> str:
    if not isinstance(payload, str):
        raise FrameError("media.payload is not a string")
    try:
        binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error as exc:
        raise FrameError(f"media.payload is not valid base64: {exc}") from None
    return payload


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameError(f"{name} is missing or not an object")
    return value


def _sid(value: object, name: str) -> str:
    if not isinstance(value, str) or not _SID.match(value):
        raise FrameError(f"{name} is missing or malformed")
    return value


def parse_frame(text: str | bytes) -> Frame:
    """Parse one Twilio frame; raises `FrameError` for anything malformed."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise FrameError("frame is not a JSON object")
    event = data.get("event")
    if event == "media":
        media = _object(data.get("media"), "media")
        payload = _checked_base64(media.get("payload"))
        try:
            timestamp = int(media.get("timestamp", 0))
        except (TypeError, ValueError):
            raise FrameError("media.timestamp is not a number") from None
        return Media(payload, base64_decoded_length(payload), timestamp)
    if event == "mark":
        name = _object(data.get("mark"), "mark").get("name")
        if not isinstance(name, str):
            raise FrameError("mark.name is missing")
        return Mark(name)
    if event == "start":
        start = _object(data.get("start"), "start")
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise FrameError("start.customParameters is not an object")
        media_format = start.get("mediaFormat") or {}
        encoding = media_format.get("encoding", "audio/x-mulaw") if isinstance(media_format, dict) else ""
        return Start(
            stream_sid=_sid(data.get("streamSid") or start.get("streamSid"), "streamSid"),
            call_sid=_sid(start.get("callSid"), "start.callSid"),
            account_sid=str(start.get("accountSid", "")),
            custom_parameters={str(k): str(v) for k, v in params.items()},
            encoding=str(encoding),
        )
    if event == "dtmf":
        digit = _object(data.get("dtmf"), "dtmf").get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise FrameError("dtmf.digit is missing or not a key")
        return Dtmf(digit)
    if event == "stop":
        stop = data.get("stop")
        return Stop(str(stop.get("callSid")) if isinstance(stop, dict) and stop.get("callSid") else None)
    if event == "connected":
        return Connected()
    if not isinstance(event, str):
        raise FrameError("frame has no event")
    return UnknownEvent(event)


def media_message(stream_sid: str, payload_b64: str) -> str:
    """An outbound `media` frame (payload: base64 raw mu-law 8 kHz)."""
    return f'{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{payload_b64}"}}}}'


def mark_message(stream_sid: str, name: str) -> str:
    """An outbound `mark`; Twilio echoes it when the audio queued before it has played (or was cleared)."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """An outbound `clear`: drop all buffered audio and return every pending mark at once."""
    return f'{{"event":"clear","streamSid":"{stream_sid}"}}'
