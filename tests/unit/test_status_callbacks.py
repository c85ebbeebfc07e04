"""Twilio's status callbacks reach the call record only when signed and well formed; the relay says at
start-up when the emergency screen cannot run."""

from __future__ import annotations

from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from app.calls.events import CallStatus, MemorySink, RecordingStatus
from app.main import create_app
from app.settings import load_settings
from app.sim.demo_business import demo_backend
from app.sim.twilio_callbacks import call_status_form, recording_status_form
from app.twilio.signature import sign

ORIGIN = "https://relay.example.test"
TOKEN = "status-test-token"
CALL = "CA" + "a" * 32
RECORDING = "RE" + "b" * 32


def _client(sink: MemorySink, **overrides: object) -> TestClient:
    settings = load_settings(
        _env_file=None, twilio_auth_token=TOKEN, public_base_url=ORIGIN, openai_api_key="sk-x", **overrides
    )
    return TestClient(create_app(settings, sink=sink, business=demo_backend))


def test_signed_callbacks_become_call_events_and_forged_or_malformed_ones_do_not() -> None:
    sink = MemorySink()
    with _client(sink) as client:
        form = call_status_form(CALL, "completed", 61)
        url = f"{ORIGIN}/twilio/call/status"
        assert client.post("/twilio/call/status", data=form).status_code == 403
        forged = {"X-Twilio-Signature": sign("wrong", url, form)}
        assert client.post("/twilio/call/status", data=form, headers=forged).status_code == 403
        bad = form | {"CallSid": "CA-not-a-sid"}
        signed_bad = {"X-Twilio-Signature": sign(TOKEN, url, bad)}
        assert client.post("/twilio/call/status", data=bad, headers=signed_bad).status_code == 400
        good = {"X-Twilio-Signature": sign(TOKEN, url, form)}
        assert client.post("/twilio/call/status", data=form, headers=good).status_code == 204
        recording = recording_status_form("AC" + "c" * 32, CALL, RECORDING, 42)
        rec_url = f"{ORIGIN}/twilio/recording/status"
        headers = {"X-Twilio-Signature": sign(TOKEN, rec_url, recording)}
        assert client.post("/twilio/recording/status", data=recording, headers=headers).status_code == 204
    (status,) = [e for e in sink.events if isinstance(e, CallStatus)]
    assert (status.call_sid, status.status, status.duration_seconds) == (CALL, "completed", 61.0)
    (stored,) = [e for e in sink.events if isinstance(e, RecordingStatus)]
    assert stored.url is not None and stored.url.endswith(RECORDING) and stored.duration_seconds == 42.0


def test_an_empty_transcription_model_is_reported_at_start_up() -> None:
    with capture_logs() as logs:
        _client(MemorySink(), transcription_model="")
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["emergency_screen_off"]
    with capture_logs() as logs:
        _client(MemorySink())
    assert not [entry for entry in logs if entry["event"] == "emergency_screen_off"]
