"""The evaluation's fixed caller lines and the action each should lead to.

A case is one call: one or more caller lines, each with the action the engine should take for it. Actions
are written as labels (see `label_of`): a tool call with the arguments that matter, or what the engine
asked for. Days are relative to the business's today, worked out here independently of the engine's
parser.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


@dataclass(frozen=True)
class Line:
    """One caller line and the action label it should get."""

    text: str
    expected: str


def _upcoming(today: dt.date, weekday: str, *, strictly_after: bool = False) -> str:
    ahead = (WEEKDAYS.index(weekday) - today.weekday()) % 7
    if strictly_after and ahead == 0:
        ahead = 7
    return (today + dt.timedelta(days=ahead)).isoformat()


def cases(today: dt.date) -> list[list[Line]]:
    """The calls to place: lists of lines, each with its expected action."""
    tomorrow = (today + dt.timedelta(days=1)).isoformat()

    def on(weekday: str) -> str:
        return _upcoming(today, weekday)

    def hours(day: str) -> str:
        return f"lookup_hours date={day}"

    singles = [
        Line("What are your opening hours today?", hours(today.isoformat())),
        Line("Are you open on Saturday?", hours(on("saturday"))),
        Line("What time do you close tomorrow?", hours(tomorrow)),
        Line("When do you open next Monday?", hours(_upcoming(today, "monday", strictly_after=True))),
        Line("Are you open on Sunday?", hours(on("sunday"))),
        Line("How late are you open on Wednesday?", hours(on("wednesday"))),
        Line("What are your hours on Friday?", hours(on("friday"))),
        Line("Do you have anything free for a checkup tomorrow?", f"check_availability checkup {tomorrow}"),
        Line(
            "Is there a free slot for a whitening on Thursday?",
            f"check_availability whitening {on('thursday')}",
        ),
        Line("Do you have any openings on Monday?", "ask_service"),
        Line(
            "Can I book a cleaning on Tuesday at ten? My name is Alex Morgan.",
            f"book_appointment cleaning {on('tuesday')}T10:00 Alex Morgan",
        ),
        Line(
            "I would like a whitening on Friday at nine thirty in the morning. My name is Sarah Parker.",
            f"book_appointment whitening {on('friday')}T09:30 Sarah Parker",
        ),
        Line("I'd like to book a cleaning.", "ask_day"),
        Line("Can I book a checkup tomorrow at two thirty?", "ask_name"),
        Line("I want to make an appointment.", "ask_service"),
        Line("Can I speak to a person please?", "transfer_to_human caller_asked"),
        Line("I want to talk to someone.", "transfer_to_human caller_asked"),
        Line("Please put me through to a human.", "transfer_to_human caller_asked"),
        Line("I have terrible chest pain.", "transfer_to_human emergency"),
        Line("My husband can't breathe.", "transfer_to_human emergency"),
        Line("This is an emergency.", "transfer_to_human emergency"),
        Line("Can I leave a message for the doctor?", "ask_message"),
        Line("Please tell the doctor I will be late.", "take_message"),
        Line("Thanks, goodbye!", "end_call"),
        Line("That's all, thank you. Bye.", "end_call"),
        # Lines about other things (none of them is in the engine's language model corpus).
        Line("My neighbour has a very noisy dog.", "repeat"),
        Line("Where did I park my car?", "repeat"),
        Line("What is the capital of Australia?", "repeat"),
        Line("I am looking for the football results.", "repeat"),
    ]
    wednesday = _upcoming(today, "wednesday", strictly_after=True)
    dialogues = [
        [
            Line("I'd like to book a whitening.", "ask_day"),
            Line("Next Wednesday.", f"check_availability whitening {wednesday}"),
            Line("At eleven please.", "ask_name"),
            Line("My name is David Miller.", f"book_appointment whitening {wednesday}T11:00 David Miller"),
        ],
        [
            Line("Can I book a checkup on Thursday?", f"check_availability checkup {on('thursday')}"),
            Line("At one thirty please.", "ask_name"),
            Line("It's Emma Wilson.", f"book_appointment checkup {on('thursday')}T13:30 Emma Wilson"),
        ],
        [
            Line("I need a cleaning tomorrow at three.", "ask_name"),
            Line("My name is John Smith.", f"book_appointment cleaning {tomorrow}T15:00 John Smith"),
        ],
        [
            Line("Can I leave a message?", "ask_message"),
            Line("Please ask Maria to call me back about my bill.", "take_message"),
        ],
        [
            Line("Hello, what are your hours?", hours(today.isoformat())),
            Line("Okay thanks, bye.", "end_call"),
        ],
    ]
    return [[line] for line in singles] + dialogues


def label_of(kind: str, tool: str | None, arguments: dict[str, Any]) -> str:
    """The label of an action the engine took (the form `Line.expected` uses)."""
    if tool == "lookup_hours":
        return f"lookup_hours date={arguments.get('date')}"
    if tool == "check_availability":
        return f"check_availability {arguments.get('service')} {arguments.get('date')}"
    if tool == "book_appointment":
        start = str(arguments.get("start") or "")[:16]
        return f"book_appointment {arguments.get('service')} {start} {arguments.get('name')}"
    if tool == "transfer_to_human":
        return f"transfer_to_human {arguments.get('reason')}"
    if tool is not None:
        return tool
    return kind
