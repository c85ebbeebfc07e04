"""Parsing Twilio frames strictly and cheaply; signatures and stream tokens."""

from __future__ import annotations

import base64
import json

import pytest

from app.twilio import messages as tw
from app.twilio.signature import is_valid_signature, is_valid_stream_token, sign, stream_token


def test_media_frame_keeps_base64_and_counts_bytes_without_decoding() -> None:
    payload = base64.b64encode(bytes(range(160))).decode()
    frame = tw.parse_frame(
        json.dumps({"event": "media", "media": {"payload": payload, "timestamp": "40", "chunk": "3"}})
    )
    assert frame == tw.Media(payload, 160, 40)
    assert tw.base64_decoded_length(base64.b64encode(b"abcde").decode()) == 5


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"event": "media", "media": {"payload": "@@@"}}',
        '{"event": "media"}',
        '{"event": "start", "start": {}}',
        '{"event": "dtmf", "dtmf": {"digit": "55"}}',
        '{"no": "event"}',
        '{"event": "media", "media": {"payload": "AAAA", "timestamp": "x"}}',
    ],
)
def test_malformed_frames_raise_frame_error(text: str) -> None:
    with pytest.raises(tw.FrameError):
        tw.parse_frame(text)


def test_start_frame_carries_custom_parameters() -> None:
    frame = tw.parse_frame(
        json.dumps(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": "MZ1",
                "start": {"callSid": "CA1", "accountSid": "AC1", "customParameters": {"token": "t"}},
            }
        )
    )
    assert isinstance(frame, tw.Start)
    assert frame.custom_parameters == {"token": "t"}
    assert tw.parse_frame('{"event": "brand_new"}') == tw.UnknownEvent("brand_new")


def test_outbound_frames_are_valid_json() -> None:
    assert json.loads(tw.media_message("MZ1", "AAAA")) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": "AAAA"},
    }
    assert json.loads(tw.clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
    assert json.loads(tw.mark_message("MZ1", "0.1"))["mark"] == {"name": "0.1"}


def test_signature_covers_url_and_params() -> None:
    token = "secret-token"
    url = "https://relay.example.test/twilio/incoming"
    signature = sign(token, url, {"CallSid": "CA1", "From": "+1"})
    assert is_valid_signature(token, url, {"CallSid": "CA1", "From": "+1"}, signature)
    assert not is_valid_signature(token, url, {"CallSid": "CA2", "From": "+1"}, signature)
    assert not is_valid_signature("other", url, {"CallSid": "CA1", "From": "+1"}, signature)
    assert not is_valid_signature(token, url, {}, None)
    wss = "wss://relay.example.test/twilio/stream"
    assert is_valid_signature(token, wss, {}, sign(token, wss))
    assert not is_valid_signature(token, "https://relay.example.test/twilio/stream", {}, sign(token, wss))


def test_stream_token_binds_call_and_caller_details() -> None:
    token = stream_token("k", "CA1", "+1555", "CA")
    assert is_valid_stream_token("k", token, "CA1", "+1555", "CA")
    assert not is_valid_stream_token("k", token, "CA1", "+1555", "NY")
    assert not is_valid_stream_token("k", token, "CA2", "+1555", "CA")
    assert not is_valid_stream_token("k", None, "CA1")
