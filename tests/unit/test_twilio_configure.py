"""`voice-agent twilio configure` against the simulated Twilio REST API, through the real `twilio` SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.cli import main
from app.sim.twilio_rest import SimulatedTwilioRest

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "configure-test-token"
NUMBER = "+14155550123"
PUBLIC = "https://agent.example.test"


@pytest.fixture
def twilio_api() -> Iterator[SimulatedTwilioRest]:
    with SimulatedTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as sim:
        yield sim


@pytest.fixture
def environment(
    twilio_api: SimulatedTwilioRest, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> pytest.MonkeyPatch:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    for name, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": NUMBER,
        "TWILIO_API_BASE_URL": twilio_api.base_url,
        "PUBLIC_BASE_URL": PUBLIC,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VOICE_FALLBACK_URL", raising=False)
    return monkeypatch


def _updates(twilio_api: SimulatedTwilioRest) -> list[dict[str, str]]:
    return [r.form for r in twilio_api.requests if r.method == "POST" and "IncomingPhoneNumbers/" in r.path]


def test_configure_points_the_number_at_the_relay_and_prints_each_change(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = twilio_api.add_number(NUMBER, voice_url="https://old.example/voice", voice_method="GET")
    twilio_api.add_number("+14155550999", voice_url="https://other.example/voice")

    assert main(["twilio", "configure"]) == 0

    number = twilio_api.number(NUMBER)
    assert number is not None
    assert number.voice_url == f"{PUBLIC}/twilio/incoming" and number.voice_method == "POST"
    assert number.voice_fallback_url == f"{PUBLIC}/twilio/fallback" and number.voice_fallback_method == "POST"
    assert (
        number.status_callback == f"{PUBLIC}/twilio/call/status" and number.status_callback_method == "POST"
    )
    other = twilio_api.number("+14155550999")
    assert other is not None and other.voice_url == "https://other.example/voice"
    lookup = twilio_api.requests[0]
    assert lookup.method == "GET" and lookup.path.endswith("/IncomingPhoneNumbers.json")
    assert lookup.query["PhoneNumber"] == NUMBER
    assert _updates(twilio_api) == [
        {
            "VoiceUrl": f"{PUBLIC}/twilio/incoming",
            "VoiceMethod": "POST",
            "VoiceFallbackUrl": f"{PUBLIC}/twilio/fallback",
            "StatusCallback": f"{PUBLIC}/twilio/call/status",
        }
    ]  # the two other methods were already POST: only what differs is sent
    printed = capsys.readouterr().out
    assert f"{NUMBER} ({record.sid}) changed:" in printed
    assert f"voice_url: https://old.example/voice -> {PUBLIC}/twilio/incoming" in printed
    assert "voice_method: GET -> POST" in printed
    assert f"voice_fallback_url: (empty) -> {PUBLIC}/twilio/fallback" in printed


def test_configure_twice_changes_nothing_the_second_time(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    twilio_api.add_number(NUMBER)
    assert main(["twilio", "configure"]) == 0
    capsys.readouterr()

    assert main(["twilio", "configure"]) == 0

    assert len(_updates(twilio_api)) == 1
    assert "already points at this relay; nothing to change" in capsys.readouterr().out


def test_dry_run_prints_the_changes_and_changes_nothing(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    twilio_api.add_number(NUMBER, voice_url="https://old.example/voice")

    assert main(["twilio", "configure", "--dry-run"]) == 0

    number = twilio_api.number(NUMBER)
    assert number is not None and number.voice_url == "https://old.example/voice"
    assert _updates(twilio_api) == []
    printed = capsys.readouterr().out
    assert "would change:" in printed and "Dry run: nothing was changed" in printed
    assert f"voice_url: https://old.example/voice -> {PUBLIC}/twilio/incoming" in printed


def test_voice_fallback_url_setting_overrides_the_relay_route(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch
) -> None:
    twilio_api.add_number(NUMBER)
    environment.setenv("VOICE_FALLBACK_URL", "https://handler.twilio.com/twiml/EH123")

    assert main(["twilio", "configure"]) == 0

    number = twilio_api.number(NUMBER)
    assert number is not None and number.voice_fallback_url == "https://handler.twilio.com/twiml/EH123"


@pytest.mark.parametrize(
    ("binding", "explained"),
    [
        ({"voice_application_sid": "AP" + "3" * 32}, "TwiML App"),
        ({"trunk_sid": "TK" + "4" * 32}, "SIP trunk"),
    ],
)
def test_a_number_bound_to_an_app_or_trunk_is_refused_not_configured(
    twilio_api: SimulatedTwilioRest,
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    binding: dict[str, str],
    explained: str,
) -> None:
    twilio_api.add_number(NUMBER, voice_url="https://old.example/voice", **binding)

    assert main(["twilio", "configure"]) == 1

    assert _updates(twilio_api) == []
    error = capsys.readouterr().err
    assert explained in error and "ignores its voice URL" in error


def test_a_number_the_account_does_not_have_is_a_clear_error(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    twilio_api.add_number("+14155550999")

    assert main(["twilio", "configure"]) == 1

    error = capsys.readouterr().err
    assert f"the account has no number {NUMBER}" in error and "TWILIO_PHONE_NUMBER" in error
    assert _updates(twilio_api) == []


def test_refused_credentials_are_named_without_printing_them(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    twilio_api.add_number(NUMBER)
    environment.setenv("TWILIO_AUTH_TOKEN", "not-the-token")

    assert main(["twilio", "configure"]) == 1

    error = capsys.readouterr().err
    assert "refused the credentials (HTTP 401)" in error and "not-the-token" not in error


def test_missing_public_base_url_is_a_settings_error(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.delenv("PUBLIC_BASE_URL")

    assert main(["twilio", "configure"]) == 2

    assert "PUBLIC_BASE_URL is not set" in capsys.readouterr().err
    assert twilio_api.requests == []


def test_a_plain_http_public_url_is_refused(
    twilio_api: SimulatedTwilioRest, environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    twilio_api.add_number(NUMBER)
    environment.setenv("PUBLIC_BASE_URL", "http://agent.example.test")

    assert main(["twilio", "configure"]) == 1

    assert "must be an https origin" in capsys.readouterr().err
    assert twilio_api.requests == []
