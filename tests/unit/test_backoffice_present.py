"""What staff read: masked numbers, local times, durations and the latency timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.backoffice.present import (
    cost_parts,
    duration_text,
    flag_text,
    latency_timeline,
    local_text,
    mask_number,
    note_text,
    outcome_label,
    recording_status_text,
    segment_of,
    transfer_text,
)

T0 = datetime(2026, 7, 1, 16, 5, tzinfo=UTC)


@dataclass
class T:
    speaker: str
    text: str
    started_at: datetime
    speech_ended_at: datetime | None = None


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_numbers_are_masked_to_their_last_four_digits() -> None:
    assert mask_number("+1 (555) 123-4567") == "••• ••• 4567"
    assert mask_number("1234") == "••••"
    assert mask_number(None) == "Unknown"


def test_times_are_shown_in_the_business_time_zone() -> None:
    assert local_text(T0, ZoneInfo("America/New_York")) == "Wed 1 Jul 2026, 12:05 PM"
    assert local_text(T0, ZoneInfo("America/Los_Angeles")) == "Wed 1 Jul 2026, 9:05 AM"
    assert local_text(None, ZoneInfo("UTC")) == ""


def test_durations_and_labels_read_plainly() -> None:
    assert (duration_text(187.4), duration_text(3723), duration_text(None)) == ("3:07", "1:02:03", "")
    assert outcome_label("booked", live=False) == "Appointment booked"
    assert outcome_label(None, live=True) == "In progress"
    assert outcome_label("some_new_outcome", live=False) == "Some new outcome"
    assert (segment_of(1), segment_of(1000), segment_of(1001)) == (1, 1, 2)


def test_latency_counts_the_greeting_from_the_stream_and_replies_from_the_caller_stopping() -> None:
    turns = [
        T("agent", "Hello, how can I help you today with anything?", at(-0.5)),  # generated before the stream
        T("caller", "Hours please", at(3.0), speech_ended_at=at(4.0)),
        T("agent", "Let me check.", at(4.45)),
        T("agent", "We open at nine.", at(6.0)),  # after a tool: answers no new caller words
        T("caller", "Thanks", at(8.0)),  # no VAD stop recorded: no wait to show
        T("agent", "Bye!", at(9.0)),
    ]
    assert latency_timeline(T0, turns) == [
        ("Greeting: “Hello, how can I help you…”", 0.0, 0.0),
        ("Reply: “Let me check.”", 4.45, 450.0),
        ("Agent: “We open at nine.”", 6.0, None),
        ("Agent: “Bye!”", 9.0, None),
    ]
    assert latency_timeline(None, turns) == []


def test_a_transfer_that_came_back_is_not_told_as_a_hand_off() -> None:
    assert (
        transfer_text("caller_asked", "completed")
        == "Transfer to a person (reason: caller asked): the person took the call"
    )
    assert transfer_text("emergency", "busy").endswith("the line was busy; the caller came back to the agent")
    assert transfer_text(None, None) == "Transfer to a person (reason: not given): ringing, no result yet"
    assert outcome_label("message_taken", live=False) == "Message taken"
    assert outcome_label(None, live=False, transferring=True) == "Being transferred"


def test_cost_parts_come_in_a_fixed_order_with_labels_and_skip_what_is_not_a_number() -> None:
    parts = cost_parts(
        {"summary": "0.0002", "new_part": 0.5, "audio_out": "0.012", "audio_in": "x", "text": "0"}
    )
    assert parts == [
        ("audio_out", "Agent audio", 0.012),
        ("text", "Text and context", 0.0),
        ("summary", "Summary", 0.0002),
        ("new_part", "New part", 0.5),
    ]
    assert cost_parts(None) == []


def test_notes_flags_and_recording_statuses_read_plainly() -> None:
    assert (
        note_text("transfer_failed", {"why": "rest"})
        == "A transfer could not start (Twilio did not accept it)"
    )
    assert note_text("model_reconnected", {}) == "The model connection dropped and was restored"
    assert note_text("something_new", {}) == "Something new"
    assert flag_text("emergency_transfer_failed").startswith(
        "Possible emergency and the transfer to a person failed"
    )
    assert flag_text(None) == "Staff were alerted during the call"
    assert (recording_status_text("absent"), recording_status_text(None)) == ("no audio was recorded", "")
