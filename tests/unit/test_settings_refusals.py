"""Bad or unsafe settings end every command with status 2 and one line per setting, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main, relay_refusals
from app.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the machine or a `.env` file: each test says exactly what is set."""
    for name in os.environ:
        if name.upper() in SETTING_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()


BAD_SETTINGS = [
    ("MAX_CALL_SECONDS", "abc", "number"),
    ("REALTIME_AUDIO_FORMAT", "opus", "'pcmu' or 'pcm16'"),
    ("BUSINESS_TIMEZONE", "Mars/Olympus_Mons", "America/New_York"),
    ("LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("OPENAI_BASE_URL", "api.openai.com/v1", "http(s) URL"),
    ("BUSINESS_API_BASE", "ftp://booking.example.com", "http(s) URL"),
    ("CRM_WEBHOOK_URL", "https://", "http(s) URL"),
    ("REDIS_URL", "localhost:6379", "redis://"),
    ("DATABASE_URL", "db.example.com/voice", "postgresql://"),
    ("MAX_CALLS_PER_CALLER", "0", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("name", "value", "accepts"), BAD_SETTINGS, ids=[b[0] for b in BAD_SETTINGS])
@pytest.mark.parametrize("command", [["serve"], ["worker"], ["db", "current"]], ids=" ".join)
def test_an_invalid_setting_ends_any_command_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    name: str,
    value: str,
    accepts: str,
) -> None:
    monkeypatch.setenv(name, value)
    code, lines = run(command, capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"voice-agent: {name}: ")
    assert accepts in lines[0]


def test_each_bad_setting_gets_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_CALL_SECONDS", "abc")
    monkeypatch.setenv("REALTIME_AUDIO_FORMAT", "opus")
    monkeypatch.setenv("BUSINESS_TIMEZONE", "Nowhere/Special")
    code, lines = run(["db", "current"], capsys)
    assert code == 2
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "BUSINESS_TIMEZONE",
        "MAX_CALL_SECONDS",
        "REALTIME_AUDIO_FORMAT",
    ]


def test_a_data_dir_that_cannot_be_created_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DATA_DIR", str(blocker / "var"))
    code, lines = run(["db", "upgrade"], capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("voice-agent: DATA_DIR: expects a writable folder")


def test_secret_values_are_never_repeated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMTP_PORT", "sk-live-secret-looking-value")
    code, lines = run(["db", "current"], capsys)
    assert code == 2
    assert "sk-live" not in "\n".join(lines)


def test_an_empty_openai_key_counts_as_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("BUSINESS_API_BASE", "https://booking.example.com")
    assert load_settings().openai_api_key is None
    code, lines = run(["serve"], capsys)
    assert code == 2
    assert lines == [
        "voice-agent: OPENAI_API_KEY is not set: the relay needs a model key (try `voice-agent demo`)"
    ]


def test_serve_refuses_to_answer_real_callers_from_the_demo_office(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, lines = run(["serve"], capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("voice-agent: BUSINESS_API_BASE is not set")


@pytest.mark.parametrize("marker", [("FLY_APP_NAME", "voice-agent"), ("VOICE_AGENT_ENV", "production")])
@pytest.mark.parametrize("command", [["serve"], ["worker"], ["beat"]], ids=" ".join)
def test_production_refuses_sqlite_and_no_redis_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    marker: tuple[str, str],
) -> None:
    monkeypatch.setenv(*marker)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("BUSINESS_API_BASE", "https://booking.example.com")
    code, lines = run(command, capsys)
    assert code == 2
    assert [line.split(":")[1].strip() for line in lines] == ["DATABASE_URL", "REDIS_URL"]
    assert "lost" in lines[0] and "never see them" in lines[1]


def test_production_settings_with_postgres_and_redis_pass_the_checks() -> None:
    settings = load_settings(
        _env_file=None,
        fly_app_name="voice-agent",
        database_url="postgres://u@db/app",
        redis_url="rediss://cache:6379/0",
    )
    assert settings.is_production() and settings.production_problems() == []
    assert not load_settings(_env_file=None).is_production()


def test_a_bad_setting_from_a_fresh_process_prints_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env |= {"MAX_CALL_SECONDS": "abc", "PYTHONPATH": str(REPO)}
    for module in ("app.cli", "workers.cli"):
        done = subprocess.run(
            [sys.executable, "-m", module, "worker"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 2
        expected = "MAX_CALL_SECONDS: Input should be a valid number, unable to parse string as a number"
        assert done.stderr.strip().splitlines() == [f"voice-agent: {expected}"]


def test_the_demo_office_may_be_chosen_on_purpose() -> None:
    settings = load_settings(_env_file=None, openai_api_key="sk-test", business_api_base="demo")
    assert relay_refusals(settings) == []
