"""Any business, not only the demo dentist: a simulated call books a salon service through the real relay."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.calls.events import MemorySink, ToolInvocation
from app.demo import run_demo
from app.sim.demo_profiles import SALON
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import LOUD, answered


def _next_weekday_at_eleven() -> dt.datetime:
    zone = ZoneInfo(SALON.timezone)
    day = dt.datetime.now(zone).date() + dt.timedelta(days=1)
    while SALON.hours[day.weekday()] is None or day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(11, 0), zone)


async def test_a_caller_books_a_haircut_at_the_salon() -> None:
    sink = MemorySink()
    slot = _next_weekday_at_eleven()
    script = [
        SimTurn(
            hears="a haircut please",
            say="One moment while I book that.",
            tool="book_appointment",
            arguments={"name": "Alex Morgan", "service": "haircut", "start": slot.isoformat()},
        ),
        SimTurn(say="You're booked for a haircut."),
    ]
    async with local_stack(sink=sink, first_audio_delay=0.05, script=script, business=SALON) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            caller.say(LOUD)
            session = stack.sim.sessions[0]
            created = await session.wait_for(
                "conversation.item.create",
                lambda e: e["item"]["type"] == "function_call_output",
                timeout=10,
            )
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
        update = session.received_of("session.update")[0]["session"]

    booked = json.loads(created["item"]["output"])
    assert booked["service"] == "haircut" and booked["confirmation"].startswith("BK")
    assert dt.datetime.fromisoformat(booked["start"]) == slot
    tools = {tool["name"]: tool for tool in update["tools"]}
    offered = tools["book_appointment"]["parameters"]["properties"]["service"]["enum"]
    assert offered == [service.id for service in SALON.services]
    assert "Northside Hair Studio (hair salon)" in update["instructions"]
    assert "dental" not in update["instructions"].lower()
    invocations = [e for e in sink.events if isinstance(e, ToolInvocation)]
    assert [(i.name, i.ok) for i in invocations] == [("book_appointment", True)]
    assert stack.sim.validation_errors == []


async def test_the_salon_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav, transcript = tmp_path / "call.wav", tmp_path / "call.txt"

    assert await run_demo(out=str(wav), transcript=str(transcript), business="salon") == 0

    out = capsys.readouterr().out
    assert "Thanks for calling Northside Hair Studio" in out
    assert "Can I book a haircut" in out and "tool: book_appointment -> ok" in out
    assert "PROBLEM" not in out
