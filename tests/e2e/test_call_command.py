"""`voice-agent call` and `voice-agent demo --scenario` drive transfers, hang-ups and idle calls."""

from __future__ import annotations

import argparse
import re
import socket
from pathlib import Path

import pytest

from app.calls.events import CallEnded, MemorySink
from app.demo import run_demo
from app.sim.call_command import add_call_arguments, run_call
from app.sim.demo_scenarios import HUMAN_NUMBER
from app.sim.harness import PUBLIC_BASE_URL, LocalStack, local_stack

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "a" * 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call_args(stack: LocalStack, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    base = ["--relay", stack.relay_url, "--public-base-url", PUBLIC_BASE_URL]
    base += ["--auth-token", stack.settings.auth_token(), "--quiet", "0.3", "--reply-timeout", "5"]
    return parser.parse_args([*base, *extra])


def _end_reasons(sink: MemorySink) -> list[str]:
    return [event.end_reason for event in sink.events if isinstance(event, CallEnded)]


async def test_call_stays_on_the_line_until_the_relay_hangs_up_on_silence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = MemorySink()
    overrides = {"idle_prompt_seconds": 1.0, "idle_hangup_seconds": 3.0}
    async with local_stack(sink=sink, first_audio_delay=0.05, settings_overrides=overrides) as stack:
        transcript = tmp_path / "call.txt"
        args = _call_args(
            stack, "--stay", "20", "--idle-hangup-seconds", "3", "--transcript", str(transcript)
        )
        assert await run_call(args) == 0
    out = capsys.readouterr().out
    # No REST API here: the relay's hang-up is its close of the stream (Twilio then ends the call).
    ended = re.search(r"ended: relay closed the stream \(code 1000\) \((\d+\.\d+) s into the stay\)", out)
    assert ended is not None, out
    assert 3.0 <= float(ended.group(1)) < 12.0
    assert "outcome: idle: hung up by agent after" in out
    assert out.count("agent speaks up") >= 2, "asked if still there, then the goodbye"
    assert "outcome: idle" in transcript.read_text()
    assert _end_reasons(sink) == ["idle"]


async def test_call_press_zero_shows_the_transfer_the_relay_asked_of_twilio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = MemorySink()
    port = _free_port()
    overrides = {
        "human_transfer_number": HUMAN_NUMBER,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_api_base_url": f"http://127.0.0.1:{port}",
    }
    async with local_stack(sink=sink, first_audio_delay=0.05, settings_overrides=overrides) as stack:
        extra = [
            "--account-sid",
            ACCOUNT_SID,
            "--twilio-rest-port",
            str(port),
            "--press",
            "0",
            "--stay",
            "10",
        ]
        assert await run_call(_call_args(stack, *extra)) == 0
    out = capsys.readouterr().out
    asked = re.search(r"relay asked Twilio: redirect the call: dial (\+\d+) \(ring \d+ s\), whispering", out)
    assert asked is not None and asked.group(1) == HUMAN_NUMBER, out
    assert "to reach a person" in out, "the whispered brief says why"
    assert "ended: Twilio REST redirected the call (Twilio stopped the stream)" in out
    assert f"outcome: transferred to {HUMAN_NUMBER}" in out
    # The hand-off line was heard before the call moved: the reply came, then the redirect.
    assert re.search(r"caller presses 0\n.*agent replies after \d+ ms\n.*relay asks Twilio", out)
    assert _end_reasons(sink) == ["transferred"]


async def test_call_reports_a_taken_rest_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        parser = argparse.ArgumentParser()
        add_call_arguments(parser)
        args = parser.parse_args(
            ["--auth-token", AUTH_TOKEN, "--account-sid", ACCOUNT_SID, "--twilio-rest-port", port]
        )
        assert await run_call(args) == 1
    assert "cannot serve the Twilio REST API" in capsys.readouterr().out


async def test_demo_transfer_scenario_moves_the_call_with_a_whispered_brief(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav, transcript = tmp_path / "call.wav", tmp_path / "call.txt"
    assert await run_demo(out=str(wav), transcript=str(transcript), scenario="transfer") == 0
    out = capsys.readouterr().out
    assert f"relay asked Twilio: redirect the call: dial {HUMAN_NUMBER}" in out
    assert 'the person who answers hears: "Transfer from the virtual receptionist.' in out
    assert "The caller has a question about a bill. Press 1 to take the call." in out
    assert f"outcome: transferred to {HUMAN_NUMBER} (end reason from the relay's events: transferred)" in out
    assert "outcome: transferred" in transcript.read_text() and wav.stat().st_size > 8000


async def test_demo_hangup_scenario_completes_the_call_after_the_goodbye(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav, transcript = tmp_path / "call.wav", tmp_path / "call.txt"
    assert await run_demo(out=str(wav), transcript=str(transcript), scenario="hangup") == 0
    out = capsys.readouterr().out
    assert "relay asked Twilio: complete the call (hang up)" in out
    assert "ended: Twilio REST completed the call" in out
    assert (
        "outcome: hung up by agent after goodbye (end reason from the relay's events: agent_hung_up)" in out
    )
    timeline = transcript.read_text()
    reply = re.search(r"\[\s*(\d+\.\d+)\] agent replies", timeline)
    completed = re.search(r"\[\s*(\d+\.\d+)\] relay asks Twilio: complete the call", timeline)
    assert reply is not None and completed is not None
    assert float(completed.group(1)) - float(reply.group(1)) > 1.5, "the goodbye played before the hang-up"
