"""The calls `voice-agent demo --scenario` can place: a caller's steps plus the simulated model's turns.

- booking: hours with `lookup_hours`, a booking with `book_appointment`, goodbye; the caller hangs up.
- transfer: the caller asks for a person; the agent says so, calls `transfer_to_human`, and the relay moves
  the call to `HUMAN_NUMBER` with a whispered brief.
- hangup: a wrong number; the agent says goodbye and calls `end_call`; the relay completes the call.
- idle: the caller goes quiet; "are you still there?" after 4 s, goodbye and hang-up after 8 s.
- cap: a 30 s call limit with a heads-up 10 s before; the agent wraps up and hangs up at the limit.

`--business` picks the demo business (app/sim/demo_profiles.py): the booking asks for its first service, and
the hours line says when it closes today.

The model's turns are consumed in order by every in-conversation response, including the relay's own
lines (idle prompt, cap warning, goodbyes), so each scenario scripts those too, in the order they come.
The cap scenario leaves the caller's question well clear of the heads-up so the two never swap turns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from app.sim.call_command import Step
from app.sim.demo_profiles import DENTAL, DemoProfile
from app.sim.realtime_script import SimTurn

SCENARIOS = ("booking", "transfer", "hangup", "idle", "cap")
HUMAN_NUMBER = "+15557654321"


@dataclass(frozen=True)
class DemoScenario:
    """One demo call: what the caller does, what the model does, and how the call should end."""

    name: str
    about: str
    steps: list[Step]
    turns: list[SimTurn]
    expected_end: str  # the relay's end reason when the scenario plays out as meant
    settings: dict[str, Any] = field(default_factory=dict)
    stay: float | None = None  # after the steps, wait this long in silence for the relay to end the call


def _next_weekday_at_ten(zone: ZoneInfo) -> dt.datetime:
    day = dt.datetime.now(zone).date() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(10, 0), zone)


def _hours_today(profile: DemoProfile, zone: ZoneInfo) -> str:
    window = profile.hours[dt.datetime.now(zone).weekday()]
    if window is None:
        return "We're closed today, but I can book you in for another day."
    closes = dt.datetime.strptime(window[1], "%H:%M").strftime("%I:%M %p").lstrip("0").replace(":00", "")
    return f"We're open today until {closes}."


def _booking(zone: ZoneInfo, profile: DemoProfile) -> DemoScenario:
    slot = _next_weekday_at_ten(zone)
    day_name = slot.strftime("%A")
    service = profile.services[0]
    lines = [
        "Hi, what are your opening hours today?",
        f"Great. Can I book a {service.name.lower()} on {day_name} at ten? My name is Alex Morgan.",
        "Perfect, thank you. Bye!",
    ]
    turns = [
        SimTurn(
            hears=lines[0], say="Let me check that for you.", tool="lookup_hours", arguments={"date": "today"}
        ),
        SimTurn(say=_hours_today(profile, zone)),
        SimTurn(
            hears=lines[1],
            say="One moment while I book that.",
            tool="book_appointment",
            arguments={"name": "Alex Morgan", "service": service.id, "start": slot.isoformat()},
        ),
        SimTurn(say=f"You're all set, Alex: a {service.name.lower()} on {day_name} at ten."),
        SimTurn(hears=lines[2], say="Thanks for calling. Goodbye!"),
    ]
    about = "hours and a booking answered with tools; the caller hangs up after the goodbye"
    return DemoScenario("booking", about, [("say", line) for line in lines], turns, "caller_hung_up")


def _transfer() -> DemoScenario:
    line = "Hi, I got a bill from you that I don't understand. Can I talk to someone about it?"
    turn = SimTurn(
        hears=line,
        say="Of course. I'm connecting you to a person now, one moment.",
        tool="transfer_to_human",
        arguments={"reason": "caller_asked", "summary": "The caller has a question about a bill."},
    )
    about = f"the caller asks for a person; warm transfer to {HUMAN_NUMBER} with a whispered brief"
    return DemoScenario(
        "transfer",
        about,
        [("say", line)],
        [turn],
        "transferred",
        settings={"human_transfer_number": HUMAN_NUMBER},
        stay=15,
    )


def _hangup() -> DemoScenario:
    line = "Oh, sorry, wrong number. Bye!"
    turn = SimTurn(
        hears=line,
        say="No problem at all. Have a good day, goodbye!",
        tool="end_call",
        arguments={"reason": "wrong number"},
    )
    about = "a wrong number: the agent says goodbye, then hangs up with end_call"
    return DemoScenario("hangup", about, [("say", line)], [turn], "agent_hung_up", stay=15)


def _idle(profile: DemoProfile) -> DemoScenario:
    line = f"Hi, do you take walk-ins for a {profile.services[0].name.lower()}?"
    turns = [
        SimTurn(hears=line, say="We do, but booking ahead is best. Would you like me to find you a time?"),
        SimTurn(say="Are you still there?"),
        SimTurn(say="I haven't heard anything, so I'll hang up now. Feel free to call back. Goodbye!"),
    ]
    about = "the caller goes quiet: asked if still there after 4 s, goodbye and hang-up after 8 s"
    settings = {"idle_prompt_seconds": 4.0, "idle_hangup_seconds": 8.0}
    return DemoScenario("idle", about, [("say", line)], turns, "idle", settings=settings, stay=30)


def _cap(profile: DemoProfile) -> DemoScenario:
    line = "Hi, can you tell me what you offer?"
    offered = ", ".join(service.name.lower() for service in profile.services)
    turns = [
        SimTurn(hears=line, say=f"Of course. We offer {offered}."),
        SimTurn(say="Just a heads-up: this call has a time limit, so we'll need to wrap up shortly."),
        SimTurn(say="We've reached the time limit for this call. Please call back any time. Goodbye!"),
    ]
    about = "a 30 s call limit: a heads-up 10 s before, then goodbye and hang-up at the limit"
    settings = {
        "max_call_seconds": 30.0,
        "max_call_warning_seconds": 10.0,
        "idle_prompt_seconds": 60.0,  # this caller is quiet on purpose: keep the idle rule out of it
        "idle_hangup_seconds": 90.0,
    }
    return DemoScenario("cap", about, [("say", line)], turns, "capped", settings=settings, stay=45)


def build_scenario(name: str, zone: ZoneInfo, profile: DemoProfile = DENTAL) -> DemoScenario:
    """The scenario called ``name`` (one of `SCENARIOS`) at ``profile``'s business, in its ``zone``."""
    if name == "booking":
        return _booking(zone, profile)
    if name == "idle":
        return _idle(profile)
    if name == "cap":
        return _cap(profile)
    builders = {"transfer": _transfer, "hangup": _hangup}
    if name not in builders:
        raise ValueError(f"unknown demo scenario {name!r}; pick one of {', '.join(SCENARIOS)}")
    return builders[name]()
