"""What staff read: masked numbers, local times, durations and the latency timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.backoffice.present import (
    duration_text,
    latency_timeline,
    local_text,
    mask_number,
    outcome_label,
    segment_of,
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
