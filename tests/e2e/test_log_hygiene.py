"""What the relay prints, even at DEBUG: no key, token, account SID or caller number, every line JSON with
`LOG_JSON`, call lines with their call sid, and request lines without query strings."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog

from app.logs import configure_logging, mask_number
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from app.twilio.signature import sign
from tests.e2e.calls import LOUD, answered

API_KEY = "sk-proj-Th1sIsTheRealT3stKeyAbcdefghijklmnop"
CALLER = "+14155550123"
HUMAN = "+15557654321"


@pytest.fixture
def captured_stderr() -> Iterator[io.StringIO]:
    """Everything the process logs, as an operator's terminal would show it; logging is restored after."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        yield buffer
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        structlog.reset_defaults()


async def test_a_debug_call_logs_no_secret_or_number_and_every_line_is_json(
    captured_stderr: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = [
        SimTurn(
            hears="a person please",
            say="Connecting you now.",
            tool="transfer_to_human",
            arguments={"reason": "caller_asked", "summary": f"Wants a call back on {CALLER}."},
        )
    ]
    overrides = {"openai_api_key": API_KEY, "human_transfer_number": HUMAN, "log_level": "DEBUG"}
    async with local_stack(
        first_audio_delay=0.05,
        script=script,
        twilio_rest=True,
        settings_overrides=overrides,
        sim_options={"api_key": API_KEY},
    ) as stack:
        assert stack.rest is not None
        settings = stack.settings
        monkeypatch.setattr(sys, "stderr", captured_stderr)  # pytest's own capture is set per test phase
        configure_logging(
            "DEBUG", json_lines=True, secrets=[API_KEY, settings.auth_token(), settings.twilio_account_sid]
        )
        logging.getLogger("websockets.client").debug("> Authorization: Bearer %s", API_KEY)  # as at DEBUG
        async with stack.caller(from_number=CALLER) as caller:
            await answered(caller)
            caller.say(LOUD)
            request = await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=15)
        dial = ET.fromstring(request.form["Twiml"]).find("Dial")
        assert dial is not None
        action = dial.get("action") or ""
        form = {"CallSid": caller.call_sid, "DialCallStatus": "no-answer", "From": CALLER}
        headers = {"X-Twilio-Signature": sign(settings.auth_token(), action, form)}
        local = action.replace(settings.public_base_url or "", stack.relay_url, 1)
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.post(local, data=form, headers=headers)).status_code == 200
    output = captured_stderr.getvalue()
    lines = [line for line in output.splitlines() if line.strip()]
    assert any('"call_incoming"' in line for line in lines), output[:3000]
    for secret in (
        API_KEY,
        settings.auth_token(),
        settings.twilio_account_sid or "",
        CALLER,
        CALLER[1:],
        HUMAN,
    ):
        assert secret not in output, f"{secret[:6]}... printed"
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all("call_sid" in r for r in records if r["event"] in ("stream_started", "call_ended"))
    assert all("?" not in str(r.get("path", "")) for r in records)
    # The transfer's callback URLs carry nothing readable: no numbers, state or brief.
    number = dial.find("Number")
    assert number is not None
    for url in (action, number.get("url") or ""):
        query = parse_qs(urlsplit(url).query)
        assert list(query) == ["ctx"], url
        assert CALLER[2:] not in url and "Wants" not in url and "caller_asked" not in url


def test_a_masked_number_keeps_two_digits() -> None:
    assert mask_number(CALLER) == "***23"
    assert mask_number(None) == "-"


def test_a_celery_worker_with_log_json_prints_only_json(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOG_JSON": "true",
        "LOG_LEVEL": "DEBUG",
        "DATA_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}",
        "TWILIO_AUTH_TOKEN": "a-token-that-must-not-print",
        "REDIS_URL": "",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "--concurrency", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert worker.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break
            lines.append(line)
            if " ready." in line:
                break
    finally:
        worker.kill()  # SIGKILL: Celery's warm-shutdown notice is printed straight to the terminal
        worker.wait(10)
    assert any(" ready." in line for line in lines), "".join(lines)
    for line in lines:
        if line.strip():
            json.loads(line)
    assert "a-token-that-must-not-print" not in "".join(lines)
