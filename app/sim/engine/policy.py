"""The engine's dialogue policy: caller text and tool results in, one action (words and a tool call) out.

Driven by the session as the relay sent it (see `BusinessContext.from_session`): today's date and the
timezone come from the instructions, the tools the engine may call and the services it can book from the
tools' schemas. A booking collects service, day, time and name, asking for what is missing in that order;
what the agent confirms is what the tool returned (a confirmation, a refusal, a taken slot with
alternatives), never what it hoped for. Anything it cannot place gets "sorry, could you say that again?".
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.sim.engine.parsing import (
    find_day,
    find_name,
    find_service,
    find_time,
    intent_of,
    is_no,
    is_yes,
    sounds_off_topic,
)
from app.sim.engine.replies import day_phrase, time_phrase, times_phrase

__all__ = ["Action", "BusinessContext", "DialoguePolicy"]

REPEAT = "Sorry, I didn't catch that. Could you say that again?"
ANYTHING_ELSE = "Is there anything else I can help with?"
# A service named with no booking words, day or time ("my name is emma a whitening on") is not a request.
_WANTS = re.compile(r"\b(i'd like|i would like|i need|i want|can i (have|get)|please)\b")
_TODAY = re.compile(r"Today is \w+ (\d{4}-\d{2}-\d{2}) \(([^)]+)\)")


@dataclass
class Action:
    """What the engine does in one response: say `say`, then call `tool` with `arguments` (if any)."""

    kind: str  # hours, availability, book, ask_<slot>, transfer, emergency, message, goodbye, repeat, ...
    say: str
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class BusinessContext:
    """What the session tells the engine about the business."""

    today: dt.date
    zone: ZoneInfo
    tools: frozenset[str] = frozenset()
    services: tuple[str, ...] = ()

    @classmethod
    def from_session(cls, session: dict[str, Any]) -> BusinessContext:
        """Today and the timezone from the instructions ("Today is Friday 2026-11-27 (Europe/Paris)"),
        the callable tools and the bookable services (the `service` enum) from the tools."""
        zone, today = ZoneInfo("UTC"), None
        match = _TODAY.search(str(session.get("instructions") or ""))
        if match:
            try:
                zone = ZoneInfo(match.group(2))
            except (ZoneInfoNotFoundError, ValueError):
                zone = ZoneInfo("UTC")
            today = dt.date.fromisoformat(match.group(1))
        tools = [tool for tool in session.get("tools") or [] if tool.get("type") == "function"]
        services: list[str] = []
        for tool in tools:
            enum = ((tool.get("parameters") or {}).get("properties") or {}).get("service", {}).get("enum")
            services += [str(value) for value in enum or [] if str(value) not in services]
        return cls(
            today=today or dt.datetime.now(zone).date(),
            zone=zone,
            tools=frozenset(str(tool.get("name")) for tool in tools),
            services=tuple(services),
        )


@dataclass
class Booking:
    """The booking being put together."""

    service: str | None = None
    day: dt.date | None = None
    time: dt.time | None = None
    name: str | None = None


class DialoguePolicy:
    """One call's dialogue state."""

    def __init__(self, context: BusinessContext) -> None:
        self.context = context
        self.booking: Booking | None = None
        self.awaiting: str | None = None  # service, day, time, name, message, slot
        self.offered: list[dt.datetime] = []

    # ---- the caller speaks ---------------------------------------------------------------------------

    def choose(self, hypotheses: list[str]) -> str:
        """What the caller said, from the recogniser's guesses (best first): the best one, unless it means
        nothing here and a close alternative asks for a person, an emergency, a message or a goodbye, or
        answers the question just asked. Telephone audio loses sounds; the meaning often survives in the
        second or third guess."""
        best = hypotheses[0] if hypotheses else ""
        if self._means_something(best):
            return best
        for alternative in hypotheses[1:]:
            if intent_of(alternative) in ("emergency", "person", "message", "goodbye"):
                return alternative
            if self.awaiting is not None and self._means_something(alternative):
                return alternative
        return best

    def _means_something(self, text: str) -> bool:
        if intent_of(text) is not None and not sounds_off_topic(text):
            return True
        today = self.context.today
        return {
            "day": lambda: find_day(text, today) is not None,
            "time": lambda: find_time(text) is not None,
            "slot": lambda: find_time(text) is not None or is_yes(text) or is_no(text),
            "name": lambda: find_name(text, expecting=True) is not None,
            "service": lambda: find_service(text, self.context.services) is not None,
        }.get(self.awaiting or "", lambda: False)()

    def on_caller(self, heard: str) -> Action:
        """The action for one recognised caller turn."""
        text = " ".join(heard.lower().split())
        if not text:
            return Action("repeat", REPEAT)
        intent = intent_of(text)
        if intent == "emergency":
            return self._transfer("emergency", "The caller described a medical emergency.")
        if intent == "person":
            return self._transfer("caller_asked", "The caller asked to speak to a person.")
        if sounds_off_topic(text) and self.awaiting != "message":
            return Action("repeat", REPEAT)
        if self.awaiting == "message" and intent != "goodbye":
            return self._take_message(text)
        if intent == "message":
            return self._message_request(text)
        if intent == "hours":
            return self._hours(find_day(text, self.context.today) or self.context.today)
        if intent == "goodbye" or (self.awaiting is None and is_no(text) and self.booking is None):
            return self._goodbye()
        return self._booking_or_availability(text, intent)

    def _booking_or_availability(self, text: str, intent: str | None) -> Action:
        service = find_service(text, self.context.services)
        day = find_day(text, self.context.today)
        moment = find_time(text)
        name = find_name(text, expecting=self.awaiting == "name")
        if self.awaiting == "slot" and self.offered and moment is None and is_yes(text):
            chosen = self.offered[0]
            day, moment = chosen.date(), chosen.time().replace(tzinfo=None)
        if intent == "availability" and self.booking is None and moment is None:
            if service is None:
                self.booking = Booking(day=day)
                self.awaiting = "service"
                return self._ask_service()
            return self._availability(service, day or self.context.today)
        wants = service is not None and (day or moment or _WANTS.search(text))
        if intent == "book" or self.booking is not None or wants:
            booking = self.booking or Booking()
            booking.service = service or booking.service
            booking.day = day or booking.day
            booking.time = moment or booking.time
            booking.name = name or booking.name
            self.booking = booking
            if self.awaiting == "slot" and is_no(text) and moment is None:
                booking.time = None
            return self._next_booking_step(booking)
        return Action("repeat", REPEAT)

    def _next_booking_step(self, booking: Booking) -> Action:
        if booking.service is None:
            self.awaiting = "service"
            return self._ask_service()
        if booking.day is None:
            self.awaiting = "day"
            return Action("ask_day", f"Sure, a {_spoken(booking.service)}. What day would you like?")
        if booking.time is None:
            if "check_availability" in self.context.tools and self.awaiting != "time":
                self.awaiting = "time"
                return self._availability(booking.service, booking.day)
            self.awaiting = "time"
            when = day_phrase(booking.day, self.context.today)
            return Action("ask_time", f"What time {when} would you like?")
        if booking.name is None:
            self.awaiting = "name"
            return Action("ask_name", "And what name should I put the booking under?")
        if "book_appointment" not in self.context.tools:
            return Action("book", "I'm sorry, I can't make bookings right now. " + ANYTHING_ELSE)
        start = dt.datetime.combine(booking.day, booking.time, self.context.zone)
        self.awaiting = None
        arguments = {"name": booking.name, "service": booking.service, "start": start.isoformat()}
        return Action("book", "One moment while I book that.", "book_appointment", arguments)

    def _ask_service(self) -> Action:
        options = [_spoken(service) for service in self.context.services if service != "emergency"]
        listed = ", ".join(f"a {option}" for option in options[:-1]) + f" or {options[-1]}" if options else ""
        return Action("ask_service", f"Which service would you like: {listed}?" if listed else REPEAT)

    def _hours(self, day: dt.date) -> Action:
        if "lookup_hours" not in self.context.tools:
            return Action("hours", "I'm sorry, I can't look up our hours right now. " + ANYTHING_ELSE)
        return Action("hours", "Let me check.", "lookup_hours", {"date": day.isoformat()})

    def _availability(self, service: str, day: dt.date) -> Action:
        if "check_availability" not in self.context.tools:
            return Action("availability", "I'm sorry, I can't check the diary right now.")
        arguments = {"service": service, "date": day.isoformat()}
        return Action("availability", "Let me look at the diary.", "check_availability", arguments)

    def _transfer(self, reason: str, summary: str) -> Action:
        self.awaiting = None
        if reason == "emergency":
            say = "If this is an emergency, please hang up and dial 911 now. I'm connecting you to a person."
        else:
            say = "Of course. I'm connecting you to a person now."
        if "transfer_to_human" not in self.context.tools:
            return Action("transfer", "I'm sorry, I can't transfer calls right now.")
        kind = "emergency" if reason == "emergency" else "transfer"
        return Action(kind, say, "transfer_to_human", {"reason": reason, "summary": summary})

    def _message_request(self, text: str) -> Action:
        body = re.sub(
            r"^.*?\b(leave a message|take a message|a message)( for (the doctor|\w+))?\s*", "", text
        )
        if len(body.split()) >= 3 or re.search(r"\b(tell|ask) ", text):
            return self._take_message(text)
        self.awaiting = "message"
        return Action("ask_message", "Of course. What's the message?")

    def _take_message(self, text: str) -> Action:
        self.awaiting = None
        if "take_message" not in self.context.tools:
            return Action("message", "I'm sorry, I can't take messages right now.")
        return Action("message", "I'll pass that on.", "take_message", {"message": text})

    def _goodbye(self) -> Action:
        self.awaiting = None
        tool = "end_call" if "end_call" in self.context.tools else None
        arguments = {"reason": "the caller said goodbye"} if tool else {}
        return Action("goodbye", "Thank you for calling. Goodbye!", tool, arguments)

    # ---- a tool answers ------------------------------------------------------------------------------

    def on_tool_result(self, name: str, arguments: dict[str, Any], output: str) -> Action:
        """What to say about a function's result, as the relay returned it."""
        try:
            result = json.loads(output)
        except ValueError:
            result = {"error": {"code": "bad_output", "message": "The system gave an answer I can't read."}}
        if not isinstance(result, dict):
            result = {}
        error = result.get("error")
        if name == "transfer_to_human" and error:
            self.awaiting = "message"
            return Action("result", "I'm sorry, nobody can take the call right now. Shall I take a message?")
        if name == "book_appointment":
            return self._booked(result, arguments)
        if isinstance(error, dict):
            message = str(error.get("message") or "something went wrong")
            return Action("result", f"Sorry, I couldn't do that: {message} {ANYTHING_ELSE}")
        if name == "lookup_hours":
            return Action("result", self._hours_said(result) + " " + ANYTHING_ELSE)
        if name == "check_availability":
            return self._offer(result)
        if name == "take_message":
            return Action("result", "Thanks, I've passed your message on. " + ANYTHING_ELSE)
        return Action("result", "Done. " + ANYTHING_ELSE)

    def _hours_said(self, result: dict[str, Any]) -> str:
        day = _date(result.get("date")) or self.context.today
        when = day_phrase(day, self.context.today)
        if result.get("closed"):
            return f"We're closed {when}."
        opens, closes = _clock(result.get("open")), _clock(result.get("close"))
        if opens is None or closes is None:
            return "I couldn't read our hours, sorry."
        return f"{_upper_first(when)} we're open from {time_phrase(opens)} until {time_phrase(closes)}."

    def _offer(self, result: dict[str, Any]) -> Action:
        day = _date(result.get("date")) or self.context.today
        service = str(result.get("service") or "appointment")
        when = day_phrase(day, self.context.today)
        slots = [_moment(value) for value in result.get("slots") or []]
        self.offered = [slot for slot in slots if slot is not None][:3]
        self.booking = self.booking or Booking(service=service)
        self.booking.service, self.booking.day = service, day
        if not self.offered:
            self.booking.day = None
            self.awaiting = "day"
            return Action(
                "result", f"Sorry, there's nothing free for a {_spoken(service)} {when}. Another day?"
            )
        self.awaiting = "slot"
        free = times_phrase([slot.time() for slot in self.offered])
        return Action("result", f"{_upper_first(when)} I can offer {free}. Would one of those work?")

    def _booked(self, result: dict[str, Any], arguments: dict[str, Any]) -> Action:
        error = result.get("error")
        if isinstance(error, dict):
            if error.get("code") == "slot_taken":
                alternatives = [_moment(value) for value in error.get("alternatives") or []]
                self.offered = [slot for slot in alternatives if slot is not None][:3]
                if self.booking is not None:
                    self.booking.time = None
                if self.offered:
                    self.awaiting = "slot"
                    free = times_phrase([slot.time() for slot in self.offered])
                    say = f"Sorry, that time isn't available. I can offer {free}. Would one of those work?"
                    return Action("result", say)
                self.awaiting = "day"
                return Action("result", "Sorry, that time isn't available and the day is full. Another day?")
            self.booking = None
            message = str(error.get("message") or "the booking system said no")
            return Action("result", f"Sorry, I couldn't make that booking: {message} {ANYTHING_ELSE}")
        start = _moment(result.get("start")) or _moment(arguments.get("start"))
        service = _spoken(str(result.get("service") or arguments.get("service") or "appointment"))
        when = (
            f" {day_phrase(start.date(), self.context.today)} at {time_phrase(start.time())}" if start else ""
        )
        code = " ".join(str(result.get("confirmation") or ""))
        name = str(arguments.get("name") or "").split(" ")[0]
        self.booking, self.awaiting, self.offered = None, None, []
        confirmed = f"You're all set{', ' + name if name else ''}: a {service}{when}."
        if code:
            confirmed += f" Your confirmation code is {code}."
        return Action("result", f"{confirmed} {ANYTHING_ELSE}")


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _spoken(service: str) -> str:
    return service.replace("_", " ")


def _date(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def _clock(value: object) -> dt.time | None:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        return None


def _moment(value: object) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
