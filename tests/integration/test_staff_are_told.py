"""What staff are told, through the real relay, Redis, a worker process and PostgreSQL: a message the agent
took reaches the webhook, the email and the CRM; an emergency nobody can take gets the emergency-number line
and an alert to staff while the caller is still on the line."""

from __future__ import annotations

import asyncio
import email
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.outbox import OutboxSink
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import LOUD
from tests.integration.workers_harness import (
    Database,
    Endpoints,
    RedisServer,
    Services,
    relay_settings,
    wait_until,
)
from tests.smtp_stand_in import SmtpRecorder, serve_smtp

pytestmark = pytest.mark.integration

MESSAGE: dict[str, str] = {
    "message": "Please tell Doctor Lee I will be ten minutes late",
    "caller_name": "Sam Patel",
    "callback_number": "+15550002222",
}


@pytest.fixture
def smtp() -> Iterator[SmtpRecorder]:
    with serve_smtp() as recorder:
        yield recorder


def staff_env(endpoints: Endpoints, smtp: SmtpRecorder) -> dict[str, str]:
    return {
        "CRM_WEBHOOK_URL": f"{endpoints.url}/crm",
        "CRM_WEBHOOK_SECRET": "crm-secret",
        "SUMMARY_WEBHOOK_URL": f"{endpoints.url}/slack",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_STARTTLS": "false",
        "SUMMARY_EMAIL_TO": "office@example.test",
    }


def _mail_bodies(smtp: SmtpRecorder) -> list[str]:
    bodies = []
    for raw in list(smtp.messages):
        message = email.message_from_bytes(raw)
        payload = message.get_payload(decode=True)
        body = payload.decode() if isinstance(payload, bytes) else ""
        bodies.append(f"{message['Subject']}\n{body}")
    return bodies


async def test_a_taken_message_reaches_the_webhook_the_email_and_the_crm(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
    smtp: SmtpRecorder,
) -> None:
    services.worker("messages", concurrency=2, env=staff_env(fresh_endpoints, smtp))
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url))
    sink.start()
    script = [
        SimTurn(
            hears="Can you tell Doctor Lee I am running late",
            say="Of course, I'll leave a message.",
            tool="take_message",
            arguments=dict(MESSAGE),
        ),
        SimTurn(say="Your message is saved. Goodbye."),
    ]
    try:
        async with local_stack(sink=sink, first_audio_delay=0.05, script=script) as stack:
            async with stack.caller(caller_state="NY") as caller:
                await caller.dial()
                await caller.connect()
                await caller.wait_agent_audio(timeout=10)
                await caller.wait_agent_silent(quiet=0.3, timeout=10)
                caller.say(LOUD)
                await stack.sim.sessions[0].wait_for(
                    "conversation.item.create",
                    lambda e: e["item"]["type"] == "function_call_output",
                    timeout=15,
                )
                await caller.wait_agent_silent(quiet=0.5, timeout=15)
            sid = caller.call_sid
            await asyncio.sleep(0.3)  # the relay notices the hang-up and hands CallEnded to the outbox
        await asyncio.to_thread(
            wait_until,
            lambda: bool(fresh_endpoints.to("/crm") and fresh_endpoints.to("/slack") and smtp.messages),
            45,
            "the CRM, webhook and email deliveries",
        )
    finally:
        sink.close()

    assert pg.scalar("SELECT outcome FROM call_outcomes WHERE call_sid = :s", s=sid) == "message_taken"
    stored = pg.rows(
        "SELECT message, caller_name, callback_number FROM call_messages WHERE call_sid = :s", s=sid
    )
    assert [tuple(row) for row in stored] == [
        (MESSAGE["message"], MESSAGE["caller_name"], MESSAGE["callback_number"])
    ]
    crm = fresh_endpoints.to("/crm")[0].json()
    assert crm["outcome"] == "message_taken"
    assert [(m["message"], m["caller_name"], m["callback_number"]) for m in crm["messages"]] == [
        (MESSAGE["message"], MESSAGE["caller_name"], MESSAGE["callback_number"])
    ]
    assert float(crm["cost_usd"]) > 0
    slack = json.dumps(fresh_endpoints.to("/slack")[0].json())
    (mail,) = _mail_bodies(smtp)
    for delivered in (slack, mail):
        assert MESSAGE["message"] in delivered
        assert MESSAGE["caller_name"] in delivered
        assert MESSAGE["callback_number"] in delivered
        assert "Cost" in delivered


async def test_an_emergency_with_no_human_number_gets_the_emergency_line_and_an_immediate_staff_alert(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
    smtp: SmtpRecorder,
) -> None:
    services.worker("alerts", concurrency=2, env=staff_env(fresh_endpoints, smtp))
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url))
    sink.start()
    script = [SimTurn(hears="My father has chest pain and can't breathe", say="Oh no.")]
    overrides = {"human_transfer_number": None, "idle_prompt_seconds": 60, "idle_hangup_seconds": 120}
    try:
        async with local_stack(
            sink=sink, first_audio_delay=0.05, script=script, settings_overrides=overrides
        ) as stack:
            async with stack.caller(caller_state="NY") as caller:
                await caller.dial()
                await caller.connect()
                await caller.wait_agent_audio(timeout=10)
                await caller.wait_agent_silent(quiet=0.3, timeout=10)
                caller.say(LOUD)
                # Staff hear of it while the caller is still on the line.
                await asyncio.to_thread(
                    wait_until,
                    lambda: bool(fresh_endpoints.to("/slack") and smtp.messages),
                    30,
                    "the staff alert by webhook and email",
                )
                assert not caller.closed_by_relay.is_set()
                creates = stack.sim.sessions[0].received_of("response.create")
                lines = [str(c.get("response", {}).get("instructions", "")) for c in creates]
            sid = caller.call_sid
    finally:
        sink.close()

    assert any("hang up now and dial 911" in line for line in lines), lines
    assert not any("message" in line.lower() for line in lines)
    (alert,) = [post.json() for post in fresh_endpoints.to("/slack") if "alert" in post.json()]
    assert alert["alert"] == "emergency" and alert["call_sid"] == sid
    assert "dial 911" in alert["text"] and "+14155550100" in alert["text"]
    (mail,) = [body for body in _mail_bodies(smtp) if body.startswith("URGENT")]
    assert "dial 911" in mail
    flagged = pg.scalar("SELECT flagged_at FROM calls WHERE call_sid = :s", s=sid)
    assert flagged is not None
