"""The agent knows its limits: hang-up after the goodbye, warm transfer and back, DTMF 0, emergencies."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

import httpx

from app.calls.events import CallEnded, CallNote, ConsentDecision, MemorySink
from app.sim.harness import LocalStack, local_stack
from app.sim.realtime_script import SimTurn
from app.sim.twilio_caller import SimulatedCaller
from app.twilio.signature import sign
from tests.e2e.calls import LOUD, answered

HUMAN = "+15557654321"


async def _talk(caller: SimulatedCaller) -> None:
    await caller.wait_agent_silent(quiet=0.3, timeout=10)
    caller.say(LOUD)


def _ended(sink: MemorySink) -> list[str]:
    return [e.end_reason for e in sink.events if isinstance(e, CallEnded)]


def _notes(sink: MemorySink) -> list[str]:
    return [e.tag for e in sink.events if isinstance(e, CallNote)]


async def test_end_call_completes_over_rest_only_after_the_goodbye_was_heard() -> None:
    sink = MemorySink()
    script = [
        SimTurn(
            hears="that's all, bye", say="Thanks for calling, have a lovely day. Goodbye!", tool="end_call"
        )
    ]
    async with local_stack(sink=sink, first_audio_delay=0.05, script=script, twilio_rest=True) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await _talk(caller)
            request = await stack.rest.wait_for_request(
                lambda r: r.form.get("Status") == "completed", timeout=15
            )
            completed_at = time.perf_counter()
            # Everything the agent sent had been played when the call was completed (trap 7).
            assert caller.player.idle
            assert caller.player.play_clock <= completed_at
            assert request.path.endswith(f"/Calls/{caller.call_sid}.json")
        # The model said its own goodbye, so the relay asked for no second one.
        creates = stack.sim.sessions[0].received_of("response.create")
        assert not any("goodbye" in str(c.get("response", {})).lower() for c in creates)
    assert _ended(sink) == ["agent_hung_up"]


async def test_silent_end_call_gets_a_goodbye_first() -> None:
    script = [SimTurn(hears="bye", tool="end_call"), SimTurn(say="Goodbye now.")]
    async with local_stack(first_audio_delay=0.05, script=script, twilio_rest=True) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await _talk(caller)
            await stack.rest.wait_for_request(lambda r: r.form.get("Status") == "completed", timeout=15)
        creates = stack.sim.sessions[0].received_of("response.create")
        assert any("goodbye" in str(c.get("response", {}).get("instructions", "")).lower() for c in creates)


async def test_warm_transfer_redirects_after_the_handoff_line_with_a_whispered_brief() -> None:
    sink = MemorySink()
    script = [
        SimTurn(
            hears="can I talk to a person",
            say="Of course, I'm connecting you to a person now.",
            tool="transfer_to_human",
            arguments={"reason": "caller_asked", "summary": "Alex wants to discuss a bill from March."},
        )
    ]
    overrides = {"human_transfer_number": HUMAN}
    async with local_stack(
        sink=sink, first_audio_delay=0.05, script=script, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await _talk(caller)
            request = await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=15)
            assert caller.player.idle, "the hand-off line was heard before the call moved"
        dial = ET.fromstring(request.form["Twiml"]).find("Dial")
        assert dial is not None and dial.get("answerOnBridge") == "true"
        number = dial.find("Number")
        assert number is not None and number.text == HUMAN
        whisper_url = number.get("url") or ""
        assert whisper_url.startswith("https://relay.example.test/twilio/transfer/whisper?")
        # Twilio asks for the whisper when the person answers: they hear the brief and may accept.
        whisper = await _twilio_post(
            stack, whisper_url, {"CallSid": "CA" + "1" * 32, "ParentCallSid": caller.call_sid}
        )
        assert "Alex wants to discuss a bill from March." in whisper.text
        assert "Press 1" in whisper.text and "<Gather" in whisper.text
        creates = stack.sim.sessions[0].received_of("response.create")
        assert not any("connecting them" in str(c.get("response", {})) for c in creates), "no second line"
    assert "transfer_started" in _notes(sink)
    assert _ended(sink) == ["transferred"]


async def test_no_answer_brings_the_caller_back_to_the_agent_with_the_conversation() -> None:
    sink = MemorySink()
    script = [
        SimTurn(
            hears="a person please",
            say="Connecting you now.",
            tool="transfer_to_human",
            arguments={"reason": "caller_asked", "summary": "Wants a person."},
        ),
        SimTurn(say="Sorry, nobody answered. Can I take a message?"),
    ]
    overrides = {"human_transfer_number": HUMAN}
    async with local_stack(
        sink=sink, first_audio_delay=0.05, script=script, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await _talk(caller)
            request = await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=15)
        dial = ET.fromstring(request.form["Twiml"]).find("Dial")
        assert dial is not None
        done = await _twilio_post(
            stack, dial.get("action") or "", {"CallSid": caller.call_sid, "DialCallStatus": "no-answer"}
        )
        assert "<Stream" in done.text and "transfer_no-answer" in done.text
        results = [e.detail for e in sink.events if isinstance(e, CallNote) and e.tag == "transfer_result"]
        assert results == [{"status": "no-answer", "segment": 1}]  # the attempt made in segment 1
        # Twilio opens the new stream from that TwiML: the caller is with the agent again.
        back = stack.caller()
        back.call_sid = caller.call_sid
        back.twiml = done.text
        back.stream_url, back.parameters = _stream_of(done.text)
        async with back:
            await back.connect()
            await back.wait_agent_audio(timeout=5)
        session = stack.sim.sessions[-1]
        update = session.received_of("session.update")[0]["session"]
        assert "do not greet" in update["instructions"].lower()
        assert "a person please" in update["instructions"]
        first = session.received_of("response.create")[0]["response"]["instructions"]
        assert "nobody answered" in first
        assert session.model == "gpt-realtime"  # an escalated call gets the full model
    assert _ended(sink)[:1] == ["transferred"]
    # The consent decision belongs to the call's first segment; coming back does not re-record it.
    assert len([e for e in sink.events if isinstance(e, ConsentDecision)]) == 1


async def test_no_transfer_number_is_voiced_as_a_structured_tool_error() -> None:
    script = [
        SimTurn(
            hears="person", tool="transfer_to_human", arguments={"reason": "caller_asked", "summary": "x"}
        ),
        SimTurn(say="Nobody is available right now. Can I take a message?"),
    ]
    async with local_stack(first_audio_delay=0.05, script=script, twilio_rest=True) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await _talk(caller)
            await stack.sim.sessions[0].wait_for(
                "conversation.item.create", lambda e: e["item"]["type"] == "function_call_output", timeout=10
            )
        outputs = [o.output for o in stack.sim.tool_outputs]
        assert any("no_human_available" in o for o in outputs)


async def test_pressing_zero_reaches_a_person() -> None:
    overrides = {"human_transfer_number": HUMAN}
    async with local_stack(first_audio_delay=0.05, twilio_rest=True, settings_overrides=overrides) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await answered(caller)
            await caller.press("0")
            request = await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=15)
        assert HUMAN in request.form["Twiml"]
        creates = stack.sim.sessions[0].received_of("response.create")
        assert any("connecting them to a person" in str(c.get("response", {})) for c in creates)


async def test_an_emergency_is_told_to_dial_911_and_transferred_at_once() -> None:
    sink = MemorySink()
    script = [SimTurn(hears="my father has chest pain and can't breathe", say="Oh no.")]
    overrides = {"human_transfer_number": HUMAN}
    async with local_stack(
        sink=sink, first_audio_delay=0.05, script=script, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await _talk(caller)
            await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=15)
        creates = stack.sim.sessions[0].received_of("response.create")
        assert any("911" in str(c.get("response", {})) for c in creates)
    assert "emergency" in _notes(sink)


async def _twilio_post(stack: LocalStack, public_url: str, form: dict[str, str]) -> httpx.Response:
    """POST as Twilio would: signed over the public URL, sent to the relay's real address."""
    signature = sign(stack.settings.auth_token(), public_url, form)
    local = public_url.replace(stack.settings.public_base_url or "", stack.relay_url)
    async with httpx.AsyncClient() as client:
        response = await client.post(local, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    return response


def _stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(twiml).find("Connect/Stream")
    assert stream is not None
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params


async def test_forged_transfer_callbacks_are_refused() -> None:
    async with local_stack() as stack:
        async with httpx.AsyncClient() as client:
            for path in ("whisper", "answer", "done"):
                response = await client.post(
                    f"{stack.relay_url}/twilio/transfer/{path}", data={"CallSid": "CA" + "2" * 32}
                )
                assert response.status_code == 403
        await asyncio.sleep(0)
