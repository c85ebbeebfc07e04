"""The recording notice counts only when said word for word and heard to its end; a reconnect after an
emergency escalates to the full model, a plain reconnect does not."""

from __future__ import annotations

from app.calls.consent_notice import notice_spoken
from app.calls.events import ConsentDecision, ConsentNoticeAttempt, MemorySink
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import LOUD, answered

NOTICE = "This call may be recorded."


def test_the_notice_must_open_what_was_said_word_for_word() -> None:
    assert notice_spoken(NOTICE, "This call may be recorded. Thanks for calling!")
    assert notice_spoken(NOTICE, "this call MAY be recorded, thanks")
    assert not notice_spoken(NOTICE, "Thanks for calling. This call may be recorded.")
    assert not notice_spoken(NOTICE, "Just so you know, we might keep a recording of this.")
    assert not notice_spoken(NOTICE, "")


async def test_a_paraphrased_notice_is_given_again_word_for_word_before_recording() -> None:
    sink = MemorySink()
    overrides = {"recording_enabled": True}
    async with local_stack(
        sink=sink, first_audio_delay=0.05, twilio_rest=True, settings_overrides=overrides
    ) as stack:
        assert stack.rest is not None
        stack.sim.script.paraphrase_verbatim = 1  # the model paraphrases the notice in its greeting
        async with stack.caller(caller_state="PA") as caller:
            await answered(caller)
            await stack.rest.wait_for_request(lambda r: r.path.endswith("/Recordings.json"), timeout=15)
        creates = stack.sim.sessions[0].received_of("response.create")
        greeting = creates[0]["response"]["instructions"]
        assert greeting.startswith(
            f'Greet the caller now. Start with this sentence, word for word: "{NOTICE}"'
        )
    attempts = [e for e in sink.events if isinstance(e, ConsentNoticeAttempt)]
    assert [(a.attempt, a.heard, a.why_not) for a in attempts] == [
        (1, False, "not_verbatim"),
        (2, True, None),
    ]
    assert attempts[0].said.startswith("Just so you know")
    assert attempts[1].said == NOTICE
    (decision,) = [e for e in sink.events if isinstance(e, ConsentDecision)]
    assert decision.notice_played_at is not None and decision.notice_played_at >= attempts[1].at


async def test_a_reconnect_after_an_emergency_gets_the_full_model_and_a_plain_one_keeps_mini() -> None:
    script = [SimTurn(hears="my father has chest pain", say="Oh no.")]
    async with local_stack(first_audio_delay=0.05, script=script) as stack:
        async with stack.caller(caller_state="NY") as caller:
            await answered(caller)
            await stack.sim.sessions[0].drop(1011)
            plain = await stack.sim.wait_for_session(1, timeout=5)
            await plain.wait_for("response.create", timeout=5)
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
            caller.say(LOUD)  # the emergency: nobody to transfer to, so the call is escalated
            await plain.wait_for(
                "response.create",
                lambda e: "dial 911" in str(e.get("response", {}).get("instructions", "")),
                timeout=10,
            )
            await plain.drop(1011)
            escalated = await stack.sim.wait_for_session(2, timeout=5)
            await escalated.wait_for("session.update", timeout=5)
    assert plain.model == "gpt-realtime-mini"
    assert escalated.model == "gpt-realtime"
