"""The offline engine's dialogue policy: recognised caller text and tool results in, actions out."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from app.calls.prompts import load_prompts
from app.functions.booking import booking_tools
from app.functions.business import BusinessBackend
from app.functions.call_control import CONTROL_TOOLS
from app.functions.services import ServiceCatalog
from app.settings import Settings, load_settings
from app.sim.demo_business import demo_backend
from app.sim.engine.parsing import find_day, find_name, find_time
from app.sim.engine.policy import Action, BusinessContext, DialoguePolicy
from app.sim.engine.replies import instruction_line

WEDNESDAY = dt.date(2026, 12, 2)
ZONE = ZoneInfo("America/New_York")


def _demo_catalog(settings: Settings) -> tuple[BusinessBackend, ServiceCatalog]:
    """The demo office's backend and its services, read once as the relay reads them at start-up."""
    backend = demo_backend(settings)
    catalog = ServiceCatalog(backend, refresh_seconds=3600)

    async def load() -> None:
        await catalog.refresh()
        await backend.aclose()

    asyncio.run(load())
    return backend, catalog


def _session(today: dt.date = WEDNESDAY) -> dict[str, object]:
    """The session config the relay sends: its real instructions and tool schemas."""
    settings = load_settings(_env_file=None)
    prompts = load_prompts(settings, today=today)
    tools = [tool.schema() for tool in booking_tools(*_demo_catalog(settings), timezone="America/New_York")]
    return {"type": "realtime", "instructions": prompts.instructions, "tools": tools + CONTROL_TOOLS}


def _policy() -> DialoguePolicy:
    return DialoguePolicy(BusinessContext.from_session(_session()))


def test_the_session_tells_the_engine_today_the_timezone_the_tools_and_the_services() -> None:
    context = BusinessContext.from_session(_session())
    assert context.today == WEDNESDAY and context.zone == ZONE
    assert {"lookup_hours", "book_appointment", "transfer_to_human", "end_call"} <= context.tools
    assert context.services == ("cleaning", "checkup", "whitening", "emergency")


@pytest.mark.parametrize(
    ("words", "day"),
    [
        ("are you open today", WEDNESDAY),
        ("what about tomorrow", dt.date(2026, 12, 3)),
        ("are you open on saturday", dt.date(2026, 12, 5)),
        ("next monday", dt.date(2026, 12, 7)),
        ("on wednesday", WEDNESDAY),
        ("next wednesday", dt.date(2026, 12, 9)),
    ],
)
def test_days_are_read_relative_to_the_business_today(words: str, day: dt.date) -> None:
    assert find_day(words, WEDNESDAY) == day


@pytest.mark.parametrize(
    ("words", "moment"),
    [
        ("at ten", dt.time(10, 0)),
        ("at two thirty please", dt.time(14, 30)),
        ("nine thirty in the morning", dt.time(9, 30)),
        ("at three", dt.time(15, 0)),
        ("how about noon", dt.time(12, 0)),
        ("do you have a free one", None),
    ],
)
def test_times_are_read_as_a_receptionist_would(words: str, moment: dt.time | None) -> None:
    assert find_time(words) == moment


def test_hours_for_a_named_day_look_up_that_date() -> None:
    action = _policy().on_caller("are you open on saturday")
    assert (action.tool, action.arguments) == ("lookup_hours", {"date": "2026-12-05"})


def test_a_full_booking_request_books_with_every_detail() -> None:
    action = _policy().on_caller("can i book a cleaning on tuesday at ten my name is alex morgan")
    assert action.tool == "book_appointment"
    assert action.arguments == {
        "name": "Alex Morgan",
        "service": "cleaning",
        "start": dt.datetime(2026, 12, 8, 10, 0, tzinfo=ZONE).isoformat(),
    }


def test_a_booking_asks_for_each_missing_detail_in_turn_then_books() -> None:
    policy = _policy()
    assert policy.on_caller("i'd like to make an appointment").kind == "ask_service"
    assert policy.on_caller("a whitening please").kind == "ask_day"
    offer = policy.on_caller("next wednesday")
    assert (offer.tool, offer.arguments) == (
        "check_availability",
        {"service": "whitening", "date": "2026-12-09"},
    )
    slots = {"date": "2026-12-09", "service": "whitening", "slots": ["2026-12-09T09:00:00-05:00"]}
    said = policy.on_tool_result("check_availability", offer.arguments, json.dumps(slots))
    assert "nine in the morning" in said.say
    assert policy.on_caller("at eleven please").kind == "ask_name"
    booked = policy.on_caller("my name is david miller")
    assert booked.tool == "book_appointment"
    assert booked.arguments["start"] == dt.datetime(2026, 12, 9, 11, 0, tzinfo=ZONE).isoformat()
    assert booked.arguments["name"] == "David Miller"


def test_yes_to_an_offered_time_books_that_time() -> None:
    policy = _policy()
    offer = policy.on_caller("can i book a checkup on thursday")
    slots = {"date": "2026-12-03", "service": "checkup", "slots": ["2026-12-03T13:30:00-05:00"]}
    policy.on_tool_result("check_availability", offer.arguments, json.dumps(slots))
    policy.on_caller("yes please")
    booked = policy.on_caller("it's emma wilson")
    assert booked.arguments["start"] == dt.datetime(2026, 12, 3, 13, 30, tzinfo=ZONE).isoformat()


def test_the_confirmation_voices_what_the_booking_tool_returned() -> None:
    policy = _policy()
    request = policy.on_caller("can i book a cleaning on tuesday at ten my name is alex morgan")
    result = {"confirmation": "BK1001", "service": "cleaning", "start": "2026-12-08T10:00:00-05:00"}
    said = policy.on_tool_result("book_appointment", request.arguments, json.dumps(result))
    assert "a cleaning on Tuesday at ten in the morning" in said.say and "B K 1 0 0 1" in said.say


def test_a_taken_slot_is_reported_with_the_alternatives_and_a_yes_books_the_first() -> None:
    policy = _policy()
    request = policy.on_caller("can i book a cleaning on tuesday at ten my name is alex morgan")
    refusal = {
        "error": {
            "code": "slot_taken",
            "message": "That time is not available.",
            "alternatives": ["2026-12-08T11:00:00-05:00", "2026-12-08T11:30:00-05:00"],
        }
    }
    said = policy.on_tool_result("book_appointment", request.arguments, json.dumps(refusal))
    assert "isn't available" in said.say and "eleven" in said.say
    assert "all set" not in said.say
    again = policy.on_caller("yes please")
    assert again.tool == "book_appointment"
    assert again.arguments["start"] == dt.datetime(2026, 12, 8, 11, 0, tzinfo=ZONE).isoformat()


def test_a_refused_booking_is_not_confirmed() -> None:
    policy = _policy()
    request = policy.on_caller("can i book a cleaning on tuesday at ten my name is alex morgan")
    refusal = {"error": {"code": "unknown_service", "message": "We do not offer that."}}
    said = policy.on_tool_result("book_appointment", request.arguments, json.dumps(refusal))
    assert "couldn't make that booking" in said.say and "all set" not in said.say


def test_hours_results_are_voiced_for_the_day_asked_including_closed_days() -> None:
    policy = _policy()
    open_day = {"date": "2026-12-04", "closed": False, "open": "09:00", "close": "16:00"}
    said = policy.on_tool_result("lookup_hours", {}, json.dumps(open_day))
    assert said.say.startswith("On Friday we're open from nine in the morning until four in the afternoon")
    closed = policy.on_tool_result("lookup_hours", {}, json.dumps({"date": "2026-12-06", "closed": True}))
    assert closed.say.startswith("We're closed on Sunday")


@pytest.mark.parametrize(
    ("words", "tool", "reason"),
    [
        ("can i speak to a person please", "transfer_to_human", "caller_asked"),
        ("i have terrible chest pain", "transfer_to_human", "emergency"),
        ("this is an emergency", "transfer_to_human", "emergency"),
        ("thanks goodbye", "end_call", None),
    ],
)
def test_people_emergencies_and_goodbyes_call_the_control_tools(
    words: str, tool: str, reason: str | None
) -> None:
    action = _policy().on_caller(words)
    assert action.tool == tool
    assert action.arguments.get("reason", None) == reason or tool == "end_call"


def test_openings_on_a_day_ask_which_service_before_checking_the_diary() -> None:
    assert _policy().on_caller("do you have any open on monday").kind == "ask_service"


def test_an_emergency_appointment_is_a_booking_not_an_emergency() -> None:
    assert _policy().on_caller("can i book an emergency appointment tomorrow").tool != "transfer_to_human"


def test_a_message_is_asked_for_then_taken_word_for_word() -> None:
    policy = _policy()
    assert policy.on_caller("can i leave a message").kind == "ask_message"
    taken = policy.on_caller("please ask maria to call me back")
    assert (taken.tool, taken.arguments) == ("take_message", {"message": "please ask maria to call me back"})


def test_nobody_to_transfer_to_offers_a_message() -> None:
    policy = _policy()
    policy.on_caller("can i speak to a person")
    error = {"error": {"code": "no_human_available", "message": "Nobody can take the call right now."}}
    said = policy.on_tool_result("transfer_to_human", {}, json.dumps(error))
    assert "message" in said.say
    assert policy.on_caller("tell the doctor i called").tool == "take_message"


def test_a_service_named_in_passing_is_not_a_booking_request() -> None:
    assert _policy().on_caller("my name is emma miller a whitening on").kind == "repeat"
    assert _policy().on_caller("i'd like a whitening").kind == "ask_day"


def test_a_close_guess_that_asks_for_a_person_wins_over_a_meaningless_best_guess() -> None:
    guesses = ["the doctor quickly you", "can i speak to a quickly you"]
    assert _policy().choose(guesses) == "can i speak to a quickly you"
    assert _policy().choose(["what are your hours today", "can i speak to someone"]) == (
        "what are your hours today"
    )


def test_after_a_question_a_guess_that_answers_it_wins() -> None:
    policy = _policy()
    policy.on_caller("i'd like to book a whitening")
    assert policy.choose(["when late", "next wednesday"]) == "next wednesday"


def test_words_it_cannot_place_get_a_request_to_say_them_again() -> None:
    assert _policy().on_caller("the purple elephant sings jazz") == Action(
        "repeat", "Sorry, I didn't catch that. Could you say that again?"
    )
    assert _policy().on_caller("").kind == "repeat"


def test_tools_the_session_does_not_offer_are_never_called() -> None:
    session = _session()
    session["tools"] = []
    policy = DialoguePolicy(BusinessContext.from_session(session))
    assert policy.on_caller("what are your hours today").tool is None
    assert policy.on_caller("goodbye").tool is None


def test_names_and_the_relays_own_lines() -> None:
    assert find_name("my name is sarah parker") == "Sarah Parker"
    assert find_name("john smith", expecting=True) == "John Smith"
    assert instruction_line('Greet the caller now. Say exactly this and nothing else: "Hello there."') == (
        "Hello there."
    )
    assert instruction_line("The caller has been silent. Ask briefly whether they are still there.") == (
        "Are you still there?"
    )


def test_the_recording_notice_is_said_word_for_word_before_the_greeting() -> None:
    notice = "This call may be recorded."
    greeting = (
        'Greet the caller now. Start with this sentence, word for word: "{n}" Then say exactly this and '
    )
    assert instruction_line(greeting.format(n=notice) + 'nothing else: "Hello there."') == (
        "This call may be recorded. Hello there."
    )
    again = f'Say this sentence, word for word, and nothing else: "{notice}"'
    assert instruction_line(again) == notice
