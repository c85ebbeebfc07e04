"""What staff are told: a message taken reaches the summary, webhook, email and CRM with its own outcome;
the call's cost in dollars, from the usage the relay reported, is in what they receive."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.calls.events import CallEnded, CallEvent, CallNote, CallStarted, TranscriptTurn, event_to_record
from app.calls.model_events import add_response_usage, add_transcription_usage
from app.db.call_records import record_event
from app.db.engine import make_engine, make_session_factory
from app.db.models import Base
from app.db.pricing import cost_breakdown, summary_cost_usd
from app.settings import load_settings
from workers.effects.call_view import CallView, call_cost_usd, load_call_view
from workers.effects.crm import crm_payload
from workers.effects.delivery import slack_message, summary_email
from workers.effects.outcome import classify_outcome
from workers.effects.summary import summarise

SID = "CA" + "7" * 32
T0 = 1_790_000_000.0
MESSAGE = {
    "message": "Please move my Tuesday cleaning",
    "caller_name": "Ana Ruiz",
    "callback_number": "+15550001111",
}
# What the relay sums from one response.done (the simulator's and the GA server's usage shape).
RESPONSE_USAGE = {
    "total_tokens": 1700,
    "input_tokens": 1200,
    "output_tokens": 500,
    "input_token_details": {
        "text_tokens": 900,
        "audio_tokens": 300,
        "cached_tokens": 640,
        "cached_tokens_details": {"text_tokens": 512, "audio_tokens": 128},
    },
    "output_token_details": {"text_tokens": 100, "audio_tokens": 400},
}
TRANSCRIPTION_USAGE = {"type": "tokens", "input_tokens": 50, "output_tokens": 10, "total_tokens": 60}


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _usage() -> dict[str, int]:
    usage: dict[str, int] = {}
    add_response_usage(usage, RESPONSE_USAGE)
    add_transcription_usage(usage, TRANSCRIPTION_USAGE)
    return usage


def _store(sessions: sessionmaker[Session], *events: CallEvent) -> None:
    with sessions.begin() as session:
        for event in events:
            record_event(session, event_to_record(event), {"expected": {"transcript_turn": 1}})


def _view(sessions: sessionmaker[Session]) -> CallView:
    with sessions() as session:
        view = load_call_view(session, SID)
    assert view is not None
    return view


def a_call_with_a_message(sessions: sessionmaker[Session]) -> None:
    _store(
        sessions,
        CallStarted(SID, "+15552223333", "+15559990000", "NY", "gpt-realtime-mini", T0),
        TranscriptTurn(SID, 1, "caller", "Can you pass a message to the office", T0 + 1, T0 + 3),
        CallNote(SID, T0 + 5, "message", MESSAGE),
        CallEnded(SID, T0 + 30, "caller_hung_up", 20.0, 15.0, _usage(), model="gpt-realtime-mini"),
    )


def test_a_taken_message_reaches_the_summary_webhook_email_and_crm_with_its_own_outcome(
    sessions: sessionmaker[Session],
) -> None:
    a_call_with_a_message(sessions)
    assert classify_outcome(sessions, SID) == "message_taken"
    summary = summarise(sessions, load_settings(_env_file=None), SID)
    assert summary is not None and "Please move my Tuesday cleaning" in summary
    assert "Ana Ruiz" in summary and "+15550001111" in summary
    view = _view(sessions)
    slack = str(slack_message(view))
    email = summary_email(view, load_settings(_env_file=None, smtp_host="mail.test")).get_content()
    for delivered in (slack, email):
        assert "Please move my Tuesday cleaning" in delivered
        assert "Ana Ruiz" in delivered and "+15550001111" in delivered
        assert "message taken" in delivered
    crm = crm_payload(view)
    assert crm["outcome"] == "message_taken"
    assert crm["messages"] == [
        {
            "message": "Please move my Tuesday cleaning",
            "caller_name": "Ana Ruiz",
            "callback_number": "+15550001111",
            "at": crm["messages"][0]["at"],
        }
    ]


def test_the_cost_comes_from_the_usage_by_kind_and_reaches_staff_and_the_crm(
    sessions: sessionmaker[Session],
) -> None:
    parts = cost_breakdown("gpt-realtime-mini", 20.0, 15.0, _usage())
    # audio in: 172 fresh at $10/M + 128 cached at $0.30/M; out: 400 audio at $20/M.
    assert parts["audio_in"] == Decimal("0.00176")
    assert parts["audio_out"] == Decimal("0.00800")
    # text: 388 fresh at $0.60/M + 512 cached at $0.06/M + 100 out at $2.40/M.
    assert parts["text"] == Decimal("0.00050")
    # transcription: 50 audio tokens at $3/M + 10 text tokens at $5/M.
    assert parts["transcription"] == Decimal("0.00020")
    assert summary_cost_usd("gpt-4o-mini", 10_000, 1_000) == Decimal("0.00210")

    a_call_with_a_message(sessions)
    classify_outcome(sessions, SID)
    summarise(sessions, load_settings(_env_file=None), SID)
    view = _view(sessions)
    assert call_cost_usd(view) == sum(parts.values(), Decimal(0))
    crm = crm_payload(view)
    assert Decimal(crm["cost_usd"]) == call_cost_usd(view)
    assert set(crm["cost_breakdown_usd"]) == {"audio_in", "audio_out", "text", "transcription", "summary"}
    assert f"${call_cost_usd(view):.4f}" in str(slack_message(view))
