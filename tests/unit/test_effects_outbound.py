"""Effects that talk to the outside: the summary model, the CRM webhook, the staff webhook and email.

Every far side is a real local server (HTTP on 127.0.0.1, a minimal SMTP server), never a real host.
"""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.calls.events import CallEnded, CallStarted, ToolInvocation, TranscriptTurn, event_to_record
from app.db.call_records import record_event
from app.db.engine import make_engine, make_session_factory
from app.db.models import Base, CallSummary, Delivery
from app.settings import Settings, load_settings
from tests.smtp_stand_in import SmtpRecorder, serve_smtp
from workers.effects.crm import sync_crm
from workers.effects.delivery import deliver_summary
from workers.effects.errors import PermanentEffectError, TransientEffectError
from workers.effects.outcome import classify_outcome
from workers.effects.summary import summarise

SID = "CA" + "d" * 32
CALLER = "+15551234567"
T0 = 1_790_000_000.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpRecorder:
    """A local HTTP endpoint that records requests and answers with a chosen status."""

    requests: list[Received] = field(default_factory=list)
    status: int = 200
    reply: dict[str, Any] = field(default_factory=dict)
    url: str = ""

    def json_bodies(self) -> list[Any]:
        return [json.loads(item.body) for item in self.requests]


@pytest.fixture
def http_server() -> Iterator[HttpRecorder]:
    recorder = HttpRecorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            recorder.requests.append(Received(self.path, dict(self.headers.items()), body))
            payload = json.dumps(recorder.reply).encode()
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpRecorder]:
    with serve_smtp() as recorder:
        yield recorder


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        for event in (
            CallStarted(SID, CALLER, "+15559990000", "NY", "gpt-realtime-mini", T0),
            TranscriptTurn(SID, 1, "agent", "Bright Smile Dental, how can I help?", T0, T0 + 2),
            TranscriptTurn(
                SID, 2, "caller", "This is Ana Ruiz, I'd like a cleaning Friday at 9.", T0 + 3, T0 + 6
            ),
            ToolInvocation(
                SID,
                1,
                "book_appointment",
                {"name": "Ana Ruiz", "service": "cleaning", "start": "2026-11-27T09:00:00-05:00"},
                {"confirmation": "BK-42"},
                True,
                140.0,
            ),
            TranscriptTurn(SID, 3, "agent", "You're booked for Friday at 9.", T0 + 7, T0 + 9),
            CallEnded(SID, T0 + 75, "caller_hung_up", 40.0, 30.0),
        ):
            record_event(session, event_to_record(event))
    classify_outcome(factory, SID)
    yield factory
    engine.dispose()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def settings_with(tmp_path: Path, **values: Any) -> Settings:
    return load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", **values)


def delivery(sessions: sessionmaker[Session], effect: str) -> Delivery | None:
    with sessions() as session:
        return session.scalars(select(Delivery).where(Delivery.effect == effect)).one_or_none()


# --- summary ----------------------------------------------------------------------------------------------


def chat_reply(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def test_without_a_key_the_summary_is_extractive(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    text = summarise(sessions, settings_with(tmp_path), SID)
    assert text is not None
    assert "appointment booked" in text and "Ana Ruiz" in text and "cleaning" in text
    assert CALLER not in text  # the booking's phone is not repeated; the number is in the call record
    with sessions() as session:
        row = session.get(CallSummary, SID)
        assert row is not None and row.method == "extractive"


def test_with_a_key_the_model_writes_it_once_from_the_transcript(
    tmp_path: Path, sessions: sessionmaker[Session], http_server: HttpRecorder
) -> None:
    http_server.reply = chat_reply("Ana Ruiz booked a cleaning for Friday 9:00 (BK-42).")
    settings = settings_with(tmp_path, openai_api_key="sk-test", openai_base_url=f"{http_server.url}/v1")
    assert summarise(sessions, settings, SID) == "Ana Ruiz booked a cleaning for Friday 9:00 (BK-42)."
    assert summarise(sessions, settings, SID) == "Ana Ruiz booked a cleaning for Friday 9:00 (BK-42)."
    assert len(http_server.requests) == 1  # the second call found it done
    request = http_server.json_bodies()[0]
    assert http_server.requests[0].path == "/v1/chat/completions"
    assert request["model"] == settings.summary_model
    prompt = request["messages"][1]["content"]
    assert "Caller: This is Ana Ruiz" in prompt and "book_appointment" in prompt
    assert CALLER not in json.dumps(request)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CallSummary)) == 1


def test_a_model_outage_retries_and_the_last_attempt_falls_back(
    tmp_path: Path, sessions: sessionmaker[Session], http_server: HttpRecorder
) -> None:
    http_server.status = 503
    settings = settings_with(tmp_path, openai_api_key="sk-test", openai_base_url=f"{http_server.url}/v1")
    with pytest.raises(TransientEffectError):
        summarise(sessions, settings, SID, allow_fallback=False)
    assert delivery(sessions, "summary") is None
    text = summarise(sessions, settings, SID, allow_fallback=True)
    assert text is not None and text.startswith("Outcome: appointment booked.")


def test_a_refused_model_request_falls_back_at_once(
    tmp_path: Path, sessions: sessionmaker[Session], http_server: HttpRecorder
) -> None:
    http_server.status = 401
    settings = settings_with(tmp_path, openai_api_key="sk-wrong", openai_base_url=f"{http_server.url}/v1")
    text = summarise(sessions, settings, SID, allow_fallback=False)
    assert text is not None and "appointment booked" in text


# --- CRM ---------------------------------------------------------------------------------------------------


def test_crm_gets_a_signed_record_once(
    tmp_path: Path, sessions: sessionmaker[Session], http_server: HttpRecorder, http: httpx.Client
) -> None:
    summarise(sessions, settings_with(tmp_path), SID)
    settings = settings_with(tmp_path, crm_webhook_url=f"{http_server.url}/crm", crm_webhook_secret="s3cret")
    assert sync_crm(sessions, settings, SID, http) == "done"
    assert sync_crm(sessions, settings, SID, http) == "done"
    assert len(http_server.requests) == 1
    received = http_server.requests[0]
    timestamp = received.headers["X-Signature-Timestamp"]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-Signature"] == f"sha256={expected}"
    assert abs(int(timestamp) - time.time()) < 60
    assert received.headers["Idempotency-Key"] == f"crm_sync:{SID}"
    body = json.loads(received.body)
    assert body["call_sid"] == SID and body["from"] == CALLER and body["outcome"] == "booked"
    assert body["bookings"][0]["result"] == {"confirmation": "BK-42"}
    assert [turn["speaker"] for turn in body["transcript"]] == ["agent", "caller", "agent"]
    assert body["summary"].startswith("Outcome: appointment booked.")


def test_crm_errors_retry_or_fail_and_nothing_is_sent_unsigned(
    tmp_path: Path, sessions: sessionmaker[Session], http_server: HttpRecorder, http: httpx.Client
) -> None:
    url = f"{http_server.url}/crm"
    assert sync_crm(sessions, settings_with(tmp_path), SID, http) == "skipped"
    with sessions.begin() as session:  # forget the skip, to try the configured cases below
        session.query(Delivery).delete()
    with pytest.raises(PermanentEffectError, match="CRM_WEBHOOK_SECRET"):
        sync_crm(sessions, settings_with(tmp_path, crm_webhook_url=url), SID, http)
    assert http_server.requests == []
    signed = settings_with(tmp_path, crm_webhook_url=url, crm_webhook_secret="k")
    http_server.status = 502
    with pytest.raises(TransientEffectError):
        sync_crm(sessions, signed, SID, http)
    http_server.status = 422
    with pytest.raises(PermanentEffectError):
        sync_crm(sessions, signed, SID, http)
    http_server.status = 200
    assert sync_crm(sessions, signed, SID, http) == "done"
    row = delivery(sessions, "crm_sync")
    assert row is not None and row.status == "done" and row.attempts == 3


def test_crm_sync_of_an_unreachable_host_is_transient(
    tmp_path: Path, sessions: sessionmaker[Session], http: httpx.Client
) -> None:
    settings = settings_with(tmp_path, crm_webhook_url="http://127.0.0.1:9/crm", crm_webhook_secret="k")
    with pytest.raises(TransientEffectError):
        sync_crm(sessions, settings, SID, http)


# --- staff delivery ----------------------------------------------------------------------------------------


def test_staff_webhook_gets_slack_json_once(
    tmp_path: Path, sessions: sessionmaker[Session], http_server: HttpRecorder, http: httpx.Client
) -> None:
    summarise(sessions, settings_with(tmp_path), SID)
    settings = settings_with(tmp_path, summary_webhook_url=f"{http_server.url}/hooks/T000")
    assert deliver_summary(sessions, settings, SID, "webhook", http=http) == "done"
    assert deliver_summary(sessions, settings, SID, "webhook", http=http) == "done"
    assert len(http_server.requests) == 1
    message = http_server.json_bodies()[0]
    assert message["text"].startswith(f"Call from {CALLER}: appointment booked")
    assert [block["type"] for block in message["blocks"]] == ["header", "section", "section"]
    assert any(SID in field["text"] for field in message["blocks"][2]["fields"])


def test_staff_email_is_sent_once_with_a_stable_message_id(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpRecorder, http: httpx.Client
) -> None:
    summarise(sessions, settings_with(tmp_path), SID)
    settings = settings_with(
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_starttls=False,
        summary_email_from="agent@example.test",
        summary_email_to="desk@example.test, owner@example.test",
    )
    smtp_server.reject_code = 451
    with pytest.raises(TransientEffectError):
        deliver_summary(sessions, settings, SID, "email", http=http)
    smtp_server.reject_code = None
    assert deliver_summary(sessions, settings, SID, "email", http=http) == "done"
    assert deliver_summary(sessions, settings, SID, "email", http=http) == "done"
    assert len(smtp_server.messages) == 1
    message = email.message_from_bytes(smtp_server.messages[0])
    assert message["Message-ID"] == f"<summary.{SID}@voice-agent>"
    assert message["Subject"] == f"Call from {CALLER}: appointment booked"
    assert "Caller: This is Ana Ruiz" in message.get_payload()


def test_unconfigured_channels_are_recorded_as_skipped(
    tmp_path: Path, sessions: sessionmaker[Session], http: httpx.Client
) -> None:
    assert deliver_summary(sessions, settings_with(tmp_path), SID, "webhook", http=http) == "skipped"
    row = delivery(sessions, "summary_webhook")
    assert row is not None and row.detail == {"reason": "webhook delivery not configured"}
