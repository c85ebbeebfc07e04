"""How the engine says things: days and times aloud, tool results, and the relay's own lines.

The relay asks for some lines itself with per-response instructions (greeting, goodbye, hand-off, idle
prompt, call-length warning; prompts/lines.toml): a quoted line is said word for word, the others are
recognised by what they ask for.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["day_phrase", "instruction_line", "time_phrase", "times_phrase"]

_HOURS = ["twelve", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]
_QUOTED = re.compile(r'Say(?: exactly this and nothing else)?:\s*"([^"]+)"', re.IGNORECASE)
# The recording notice: a sentence asked for word for word, before (or instead of) the quoted line.
_WORD_FOR_WORD = re.compile(r'word for word[^"]*"([^"]+)"', re.IGNORECASE)

# (words the instructions contain, what the engine says)
_INSTRUCTION_LINES = [
    ("still checking", "Still checking, one moment."),
    ("still there", "Are you still there?"),
    ("hang up now", "I haven't heard anything, so I'll hang up now. Goodbye!"),
    ("time limit", "We've reached the time limit for this call. Please call back any time. Goodbye!"),
    ("thirty seconds", "Just so you know, this call has to end in about thirty seconds."),
    (
        "was being transferred",
        "Sorry, the transfer didn't go through. I can take a message, or keep helping.",
    ),
    ("did not go through", "Sorry, the transfer didn't go through. I can take a message, or keep helping."),
    ("nobody can take", "I'm sorry, nobody can take the call right now. Would you like to leave a message?"),
    ("connecting them", "I'm connecting you to a person now."),
    ("apology for the pause", "Sorry about that pause. Where were we?"),
    ("goodbye", "Thank you for calling. Goodbye!"),
]


def instruction_line(instructions: str | None) -> str | None:
    """The line per-response instructions ask for, or None when they ask for nothing the engine knows."""
    if not instructions:
        return None
    quoted = [
        m.group(1).strip() for m in (_WORD_FOR_WORD.search(instructions), _QUOTED.search(instructions)) if m
    ]
    if quoted:
        return " ".join(dict.fromkeys(quoted))
    lowered = instructions.lower()
    return next((line for words, line in _INSTRUCTION_LINES if words in lowered), None)


def time_phrase(moment: dt.time) -> str:
    """ "ten", "two thirty in the afternoon", "noon" - as a receptionist says it."""
    if moment.hour == 12 and moment.minute == 0:
        return "noon"
    hour = _HOURS[moment.hour % 12]
    minutes = "" if moment.minute == 0 else f" {_minutes(moment.minute)}"
    part = " in the morning" if moment.hour < 12 else " in the afternoon" if moment.hour < 18 else " at night"
    return f"{hour}{minutes}{part}"


def _minutes(minute: int) -> str:
    named = {15: "fifteen", 30: "thirty", 45: "forty five"}
    return named.get(minute, f"{minute:02d}")


def times_phrase(moments: list[dt.time]) -> str:
    """ "nine, nine thirty or ten in the morning" for a short list."""
    spoken = [time_phrase(moment) for moment in moments]
    parts = {phrase.split(" in the ")[-1] for phrase in spoken if " in the " in phrase}
    if len(parts) == 1 and all(" in the " in phrase for phrase in spoken):
        spoken = [phrase.split(" in the ")[0] for phrase in spoken[:-1]] + spoken[-1:]
    if len(spoken) == 1:
        return spoken[0]
    return ", ".join(spoken[:-1]) + " or " + spoken[-1]


def day_phrase(day: dt.date, today: dt.date) -> str:
    """ "today", "tomorrow", "on Saturday", or "on Monday the 14th" beyond a week."""
    delta = (day - today).days
    if delta == 0:
        return "today"
    if delta == 1:
        return "tomorrow"
    if 0 < delta < 7:
        return f"on {day.strftime('%A')}"
    return f"on {day.strftime('%A')} the {_ordinal(day.day)}"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
