"""`voice-agent doctor` against the simulators and a migrated SQLite database: all ok, then each broken
setting it checks makes it fail, naming the check."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from app.cli import main
from app.db.migrate import upgrade_database
from app.doctor.runner import run_doctor
from app.settings import load_settings
from app.sim.demo_business import create_demo_business_app
from app.sim.harness import bound_port, serve_in_background, stop_server
from app.sim.realtime_server import RealtimeSimulator
from app.sim.twilio_rest import SimulatedNumber, SimulatedTwilioRest

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "doctor-test-token"
NUMBER = "+14155550123"
PUBLIC = "https://agent.example.test"


@dataclass
class Deployment:
    """A configuration whose every upstream is a simulator on this machine."""

    settings: dict[str, Any]
    realtime: RealtimeSimulator
    twilio: SimulatedTwilioRest
    number: SimulatedNumber
    tmp_path: Path
    lines: list[str] = field(default_factory=list)

    async def doctor(self, timeout: float = 3.0, **changes: Any) -> int:
        values = {**self.settings, **changes}
        self.lines = []
        return await asyncio.to_thread(
            run_doctor,
            timeout_seconds=timeout,
            out=self.lines.append,
            load=lambda: load_settings(_env_file=None, **values),
        )

    def verdict(self, check: str) -> str:
        line = next(line for line in self.lines if line[6:].startswith(check + " "))
        return line[:4].strip()

    def line(self, check: str) -> str:
        return next(line for line in self.lines if line[6:].startswith(check + " "))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve(app: FastAPI) -> AsyncIterator[str]:
    server = await serve_in_background(app)
    try:
        yield f"http://127.0.0.1:{bound_port(server)}"
    finally:
        await stop_server(server)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    database_url = f"sqlite:///{tmp_path / 'voice_agent.db'}"
    await asyncio.to_thread(upgrade_database, load_settings(_env_file=None, database_url=database_url))
    async with RealtimeSimulator(api_key="sk-doctor") as realtime:
        with SimulatedTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
            number = twilio.add_number(
                NUMBER,
                voice_url=f"{PUBLIC}/twilio/incoming",
                voice_fallback_url=f"{PUBLIC}/twilio/fallback",
                status_callback=f"{PUBLIC}/twilio/call/status",
            )
            async for backend_url in _serve(create_demo_business_app()):
                settings = {
                    "openai_api_key": "sk-doctor",
                    "openai_base_url": realtime.base_url,
                    "twilio_account_sid": ACCOUNT_SID,
                    "twilio_auth_token": AUTH_TOKEN,
                    "twilio_phone_number": NUMBER,
                    "twilio_api_base_url": twilio.base_url,
                    "public_base_url": PUBLIC,
                    "business_api_base": backend_url,
                    "database_url": database_url,
                    "redis_url": None,
                    "data_dir": tmp_path / "var",
                }
                yield Deployment(settings, realtime, twilio, number, tmp_path)


async def test_a_working_configuration_passes_every_check(deployment: Deployment) -> None:
    assert await deployment.doctor() == 0, "\n".join(deployment.lines)

    checks = ["settings", "openai", "twilio account", "twilio number", "business api", "database", "broker"]
    assert [deployment.verdict(check) for check in checks] == ["ok"] * len(checks)
    assert "cleaning" in deployment.line("business api")
    assert "sk-doctor" not in "\n".join(deployment.lines) and AUTH_TOKEN not in "\n".join(deployment.lines)


async def test_a_refused_openai_key_fails_the_openai_check(deployment: Deployment) -> None:
    assert await deployment.doctor(openai_api_key="sk-wrong") == 1

    assert deployment.verdict("openai") == "FAIL" and "HTTP 401" in deployment.line("openai")
    assert "sk-wrong" not in "\n".join(deployment.lines)
    assert deployment.verdict("database") == "ok"  # one failure does not hide the other checks


async def test_a_realtime_model_the_key_cannot_use_fails_the_openai_check(deployment: Deployment) -> None:
    deployment.realtime.models.remove("gpt-realtime-mini")

    assert await deployment.doctor() == 1

    assert deployment.verdict("openai") == "FAIL" and "gpt-realtime-mini" in deployment.line("openai")


async def test_unreachable_openai_fails_the_openai_check(deployment: Deployment) -> None:
    assert await deployment.doctor(openai_base_url=f"http://127.0.0.1:{_closed_port()}/v1") == 1

    assert deployment.verdict("openai") == "FAIL" and "could not be reached" in deployment.line("openai")


async def test_refused_twilio_credentials_fail_the_twilio_checks(deployment: Deployment) -> None:
    assert await deployment.doctor(twilio_auth_token="wrong-token") == 1

    assert deployment.verdict("twilio account") == "FAIL"
    assert "refused the credentials" in deployment.line("twilio account")
    assert "wrong-token" not in "\n".join(deployment.lines)


async def test_a_webhook_pointing_elsewhere_fails_the_number_check(deployment: Deployment) -> None:
    deployment.number.voice_url = "https://old-host.example/voice"

    assert await deployment.doctor() == 1

    assert deployment.verdict("twilio account") == "ok"
    line = deployment.line("twilio number")
    assert line.startswith("FAIL") and "https://old-host.example/voice" in line and "twilio configure" in line


async def test_a_number_bound_to_a_twiml_app_fails_the_number_check(deployment: Deployment) -> None:
    deployment.number.voice_application_sid = "AP" + "6" * 32

    assert await deployment.doctor() == 1

    assert deployment.verdict("twilio number") == "FAIL" and "TwiML App" in deployment.line("twilio number")


async def test_a_number_the_account_lacks_fails_the_number_check(deployment: Deployment) -> None:
    assert await deployment.doctor(twilio_phone_number="+14155550888") == 1

    assert deployment.verdict("twilio number") == "FAIL" and "no number" in deployment.line("twilio number")


async def test_a_slow_twilio_fails_within_the_timeout(deployment: Deployment) -> None:
    deployment.twilio.set_delay(5.0)

    assert await deployment.doctor(timeout=0.5) == 1

    assert deployment.verdict("twilio account") == "FAIL" and deployment.verdict("database") == "ok"


async def test_a_business_backend_that_is_down_fails_the_business_check(deployment: Deployment) -> None:
    assert await deployment.doctor(business_api_base=f"http://127.0.0.1:{_closed_port()}") == 1

    line = deployment.line("business api")
    assert line.startswith("FAIL") and "GET /services" in line and "backend_unavailable" in line


def _off_contract_backend() -> FastAPI:
    app = FastAPI()

    @app.get("/services")
    async def services() -> JSONResponse:
        return JSONResponse({"services": [{"id": "cut", "name": "Cut", "minutes": "forty"}]})

    return app


def _html_backend() -> FastAPI:
    app = FastAPI()

    @app.get("/services")
    async def services() -> HTMLResponse:
        return HTMLResponse("<html><body>Welcome to nginx!</body></html>")

    return app


@pytest.mark.parametrize("make_backend", [_off_contract_backend, _html_backend])
async def test_a_business_backend_off_contract_fails_the_business_check(
    deployment: Deployment, make_backend: Any
) -> None:
    async for url in _serve(make_backend()):
        assert await deployment.doctor(business_api_base=url) == 1

    line = deployment.line("business api")
    assert line.startswith("FAIL") and "backend_bad_answer" in line


async def test_an_unmigrated_database_fails_the_database_check(deployment: Deployment) -> None:
    empty = deployment.tmp_path / "empty.db"
    empty.touch()

    assert await deployment.doctor(database_url=f"sqlite:///{empty}") == 1

    line = deployment.line("database")
    assert line.startswith("FAIL") and "no revision" in line and "db upgrade" in line


async def test_a_missing_database_file_fails_without_creating_it(deployment: Deployment) -> None:
    missing = deployment.tmp_path / "missing.db"

    assert await deployment.doctor(database_url=f"sqlite:///{missing}") == 1

    assert deployment.verdict("database") == "FAIL" and not missing.exists()


async def test_an_unreachable_redis_fails_the_broker_check(deployment: Deployment) -> None:
    assert await deployment.doctor(redis_url=f"redis://:secret-pass@127.0.0.1:{_closed_port()}/0") == 1

    line = deployment.line("broker")
    assert line.startswith("FAIL") and "PING" in line and "secret-pass" not in line


async def test_an_unwritable_data_folder_fails_the_settings_check(deployment: Deployment) -> None:
    blocker = deployment.tmp_path / "a-file"
    blocker.write_text("not a folder")

    assert await deployment.doctor(data_dir=blocker / "var") == 1

    # DATA_DIR holds the outbox journal and the embedded queue: the settings refuse it before any check.
    assert deployment.verdict("settings") == "FAIL" and "DATA_DIR" in deployment.line("settings")


async def test_an_invalid_setting_is_named_without_its_value_and_the_rest_skipped(
    deployment: Deployment,
) -> None:
    assert await deployment.doctor(vad_silence_ms="sk-looks-like-a-secret") == 1

    assert deployment.lines[0].startswith("FAIL  settings") and "VAD_SILENCE_MS" in deployment.lines[0]
    assert "sk-looks-like-a-secret" not in "\n".join(deployment.lines)
    assert deployment.verdict("openai") == "skip" and deployment.verdict("broker") == "skip"


def test_the_doctor_command_exits_non_zero_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAX_LIVE_CALLS", "0")

    assert main(["doctor", "--timeout", "1"]) == 1

    out = capsys.readouterr().out
    assert "FAIL  settings         MAX_LIVE_CALLS: Input should be greater than or equal to 1" in out


async def test_no_business_backend_fails_the_business_check(deployment: Deployment) -> None:
    assert await deployment.doctor(business_api_base=None) == 1

    assert deployment.verdict("business api") == "FAIL" and "BUSINESS_API_BASE" in deployment.line(
        "business api"
    )
