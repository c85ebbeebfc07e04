"""What a caller's words say: days, times, services, names and intents, from recognised lower-case text.

Pure functions over text, so the policy's slot filling is tested without audio.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from app.sim.engine.vocabulary import FIRST_NAMES, LAST_NAMES, WEEKDAYS, everyday_words

__all__ = ["find_day", "find_name", "find_service", "find_time", "intent_of", "is_no", "is_yes"]

_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve"
_NUMBERS = {word: value for value, word in enumerate(_NUMBER_WORDS.split())}  # noqa: SIM905 - reads as a sentence
_MINUTES = {"thirty": 30, "fifteen": 15, "forty five": 45, "o'clock": 0, "half": 30}
_HOUR_WORDS = "|".join(word for word in _NUMBERS if word != "zero")
_TIME = re.compile(
    rf"\b(?P<hour>{_HOUR_WORDS}|\d{{1,2}})(?::(?P<digits>\d\d))?"
    r"(?:\s+(?P<minutes>thirty|fifteen|forty five|o'clock))?"
    r"(?:\s+(?P<part>in the morning|in the afternoon|in the evening|a m|p m|am|pm))?\b"
)
_TIME_CONTEXT = re.compile(r"\b(at|around|about|how about|for)\s+$")

_EMERGENCY = re.compile(
    r"\b(chest|pain|can't breathe|cannot breathe|not breathing|breathe|unconscious|passed out|bleeding|"
    r"heart attack|stroke|overdose|emergency)\b"
)
_EMERGENCY_SERVICE = re.compile(r"\b(book|appointment|schedule|an emergency (visit|checkup|slot))\b")
_PERSON = re.compile(
    r"\b(person|someone|somebody|human|receptionist|manager|put me through|connect me|(speak|talk) to)\b"
)
_MESSAGE = re.compile(
    r"\b(leave a message|take a message|a message for|tell (the doctor|\w+) (that )?i|"
    r"ask (the doctor|\w+) to call me|pass on a message)\b"
)
_GOODBYE = re.compile(r"\b(goodbye|bye|that's all|that's it|that's everything|nothing else|see you)\b")
_HOURS = re.compile(r"\b(hours|open|close|closing|opening|how late)\b")
_BOOK = re.compile(r"\b(book|appointment|schedule|put me in|make an appointment|come in)\b")
_AVAILABILITY = re.compile(
    r"\b(free|available|availability|openings|what times|any time|anything|do you have any)\b"
)
_HAVE_ANY = re.compile(r"\bdo you have (any|anything)\b")  # "do you have any open(ings)": free times
_YES = re.compile(r"^(yes|yeah|yep|sure|okay|ok|please|that's right|that works|sounds good|perfect)\b")
_NO = re.compile(r"^(no|nope|not really)\b")


def intent_of(text: str) -> str | None:
    """The caller's main intent: emergency, person, message, goodbye, hours, book, availability, or None."""
    if _EMERGENCY.search(text) and not _EMERGENCY_SERVICE.search(text):
        return "emergency"
    if _HAVE_ANY.search(text) and not _PERSON.search(text):
        return "availability"
    for name, pattern in (
        ("person", _PERSON),
        ("message", _MESSAGE),
        ("hours", _HOURS),
        ("book", _BOOK),
        ("availability", _AVAILABILITY),
        ("goodbye", _GOODBYE),
    ):
        if pattern.search(text):
            return name
    return None


def sounds_off_topic(text: str) -> bool:
    """Two or more words only everyday talk uses: the caller was talking about something else (the
    recogniser maps such speech onto its closest words, which are mostly the business's)."""
    return sum(word in everyday_words() for word in text.split()) >= 2


def is_yes(text: str) -> bool:
    """An agreement ("yes please", "that works")."""
    return bool(_YES.search(text))


def is_no(text: str) -> bool:
    """A refusal ("no thanks")."""
    return bool(_NO.search(text))


def find_day(text: str, today: dt.date) -> dt.date | None:
    """The day named: today, tomorrow, (on|this|next) weekday; a bare weekday is its next occurrence."""
    if re.search(r"\bday after tomorrow\b", text):
        return today + dt.timedelta(days=2)
    if re.search(r"\btomorrow\b", text):
        return today + dt.timedelta(days=1)
    if re.search(r"\b(today|tonight|this afternoon|this morning)\b", text):
        return today
    match = re.search(rf"\b(next\s+|this\s+)?({'|'.join(WEEKDAYS)})\b", text)
    if match is None:
        return None
    ahead = (WEEKDAYS.index(match.group(2)) - today.weekday()) % 7
    if match.group(1) and match.group(1).strip() == "next" and ahead == 0:
        ahead = 7
    return today + dt.timedelta(days=ahead)


def find_time(text: str) -> dt.time | None:
    """A clock time ("ten", "two thirty", "nine in the morning", "noon"); bare 1-6 are afternoon hours."""
    if re.search(r"\bnoon\b", text):
        return dt.time(12, 0)
    for match in _TIME.finditer(text):
        before = text[: match.start()]
        explicit = match.group("minutes") or match.group("part") or match.group("digits")
        if not explicit and not _TIME_CONTEXT.search(before) and before.strip():
            continue  # "one" in "a free one" is not a time; "at one" or a bare "one" is
        hour = int(match.group("hour")) if match.group("hour").isdigit() else _NUMBERS[match.group("hour")]
        if not 1 <= hour <= 12:
            continue
        minutes = int(match.group("digits") or _MINUTES.get(match.group("minutes") or "", 0))
        part = match.group("part") or ""
        if part in ("in the afternoon", "in the evening", "p m", "pm"):
            hour = hour % 12 + 12
        elif part in ("in the morning", "a m", "am"):
            hour = hour % 12
        elif hour <= 6 or hour == 12:
            hour = hour % 12 + 12
        return dt.time(hour, minutes)
    return None


def find_service(text: str, services: Sequence[str]) -> str | None:
    """A service the business offers, named in the text (also "check up", "clean", "teeth whitening")."""
    squashed = text.replace("check up", "checkup").replace("check-up", "checkup")
    for service in services:
        spoken = service.replace("_", " ")
        if re.search(rf"\b{re.escape(spoken)}\b", squashed):
            if spoken == "emergency" and re.search(r"\bthis is an emergency\b", squashed):
                continue
            return service
    if "cleaning" in services and re.search(r"\bclean\b", squashed):
        return "cleaning"
    return None


def find_name(text: str, *, expecting: bool = False) -> str | None:
    """A caller's name after "my name is", "this is", "it's"... (or alone when the agent asked for it)."""
    first_names = "|".join(FIRST_NAMES)
    last_names = "|".join(LAST_NAMES)
    lead = r"(?:my name is|name is|this is|it's|i'm|i am|under)\s+" if not expecting else r"(?:^|\s)"
    match = re.search(rf"{lead}({first_names})(?:\s+({last_names}))?\b", text)
    if match is None and expecting:
        match = re.search(rf"\b({first_names})(?:\s+({last_names}))?\b", text)
    if match is None:
        return None
    return " ".join(part.capitalize() for part in match.groups() if part)
