"""The back office's JSON API: only with BACKOFFICE_TOKEN, only with the bearer token, filters, paging,
everything a call's page shows, follow-ups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.calls.events import MemorySink, RecordingStatus
from app.main import create_app
from app.settings import load_settings
from tests.unit.backoffice_world import (
    BOOKED,
    CAME_BACK,
    CAME_BACK_RECORDING,
    CAME_BACK_RECORDING_URL,
    CONNECTED,
    EMERGENCY,
    HUNG_UP,
    LIVE,
    NOTICE,
    T_CAME_BACK,
    TOKEN,
    World,
    open_world,
    settings_for,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(tmp_path)


@pytest.fixture
def records(tmp_path: Path) -> Iterator[World]:
    yield from open_world(tmp_path, records=True)


def test_without_a_token_setting_the_api_and_pages_do_not_exist(tmp_path: Path) -> None:
    for world in open_world(tmp_path, token=None, calls=False):
        for path in ("/api/calls", "/api/openapi.json", "/backoffice/calls", "/backoffice/sign-in"):
            assert world.client.get(path, headers=AUTH).status_code == 404, path
        assert world.client.get("/openapi.json").status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_every_api_route_refuses_a_request_without_the_token(world: World, headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/api/calls"),
        ("GET", f"/api/calls/{BOOKED}"),
        ("POST", f"/api/calls/{BOOKED}/follow-up"),
        ("GET", "/api/openapi.json"),
    ):
        response = world.client.request(method, path, headers=headers, json={"note": "x"})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    assert world.client.get(f"/api/calls/{BOOKED}", headers=AUTH).json()["follow_ups"] == []


def test_the_schema_describes_the_api_to_an_authenticated_request_only(world: World) -> None:
    assert world.client.get("/openapi.json").status_code == 404
    schema = world.client.get("/api/openapi.json", headers=AUTH).json()
    assert set(schema["paths"]) == {"/api/calls", "/api/calls/{call_sid}", "/api/calls/{call_sid}/follow-up"}
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert "CallDetail" in schema["components"]["schemas"]


def test_calls_are_listed_newest_first_with_their_flags(world: World) -> None:
    body = world.client.get("/api/calls", headers=AUTH).json()
    assert body["total"] == 3
    assert [call["call_sid"] for call in body["calls"]] == [LIVE, HUNG_UP, BOOKED]
    live, hung_up, booked = body["calls"]
    assert live["live"] is True and live["outcome_label"] == "In progress"
    assert booked["outcome"] == "booked" and booked["message_taken"] is True
    assert booked["caller"] == "+15551234567" and booked["caller_masked"] == "••• ••• 4567"
    assert booked["duration_seconds"] == 12.0 and booked["cost_usd"] > 0
    assert booked["started_local"] == "Mon 30 Nov 2026, 10:00 AM"
    assert hung_up["transfer_attempted"] is True and hung_up["transferred"] is False
    assert hung_up["message_taken"] is False


def test_filters_by_local_date_outcome_and_words_said(world: World) -> None:
    def sids(**params: str) -> list[str]:
        response = world.client.get("/api/calls", headers=AUTH, params=params)
        assert response.status_code == 200, response.text
        return [call["call_sid"] for call in response.json()["calls"]]

    assert sids(date_from="2026-11-30", date_to="2026-11-30") == [BOOKED]
    assert sids(date_from="2026-12-01") == [LIVE, HUNG_UP]
    assert sids(date_to="2026-12-01") == [HUNG_UP, BOOKED]
    assert sids(outcome="booked") == [BOOKED]
    assert sids(outcome="live") == [LIVE]
    assert sids(q="CLEANING on tuesday") == [BOOKED]
    assert sids(q="wrong number") == [HUNG_UP]
    assert sids(q="100%") == []  # a LIKE wildcard in the words is matched literally
    assert sids(q="7654321") == [HUNG_UP]
    assert world.client.get("/api/calls", headers=AUTH, params={"date_from": "yesterday"}).status_code == 422


def test_paging_walks_the_whole_list_once(world: World) -> None:
    first = world.client.get("/api/calls", headers=AUTH, params={"per_page": 2}).json()
    second = world.client.get("/api/calls", headers=AUTH, params={"per_page": 2, "page": 2}).json()
    assert (first["pages"], second["pages"], first["total"]) == (2, 2, 3)
    assert [c["call_sid"] for c in first["calls"] + second["calls"]] == [LIVE, HUNG_UP, BOOKED]
    beyond = world.client.get("/api/calls", headers=AUTH, params={"per_page": 2, "page": 3}).json()
    assert beyond["calls"] == []
    assert world.client.get("/api/calls", headers=AUTH, params={"per_page": 101}).status_code == 422


def test_a_call_comes_with_everything_its_page_shows(world: World) -> None:
    call = world.client.get(f"/api/calls/{BOOKED}", headers=AUTH).json()
    assert call["summary"] == "Sam booked a cleaning for Tuesday."
    assert [(t["speaker"], t["interrupted"]) for t in call["turns"]] == [
        ("agent", False),
        ("caller", False),
        ("agent", True),
        ("caller", False),
        ("agent", False),
    ]
    assert call["turns"][1]["text"] == "I'd like a cleaning on Tuesday"
    assert call["tools"] == [
        {
            "seq": 1,
            "name": "book_appointment",
            "arguments": {"service": "cleaning", "start": "2026-12-01T10:00:00-05:00"},
            "result": {"booked": True, "confirmation": "BK-1"},
            "ok": True,
            "latency_ms": 143.2,
        }
    ]
    message = call["messages"][0]
    assert message["message"] == "Bring X-rays" and message["caller_name"] == "Sam Lee"
    assert call["consent"]["notice_required"] is True
    assert call["consent"]["notice_played_local"] == "Mon 30 Nov 2026, 10:00 AM"
    assert call["recordings"][0]["url"].endswith(f"/Recordings/RE{'b' * 32}.mp3")
    assert [(p["at_seconds"], p["wait_ms"]) for p in call["latency"]] == [
        (0.1, 100.0),  # greeting: stream start -> first audio
        (5.6, 600.0),  # caller stopped at 5.0
        (8.0, 600.0),  # caller stopped at 7.4 (the interrupted reply was cut at 6.4)
    ]
    hung_up = world.client.get(f"/api/calls/{HUNG_UP}", headers=AUTH).json()
    assert [(a["result"], a["connected"]) for a in hung_up["transfer_attempts"]] == [("no-answer", False)]
    assert hung_up["transfer_attempts"][0]["description"] == (
        "Transfer to a person (reason: caller request): nobody answered; the caller came back to the agent"
    )
    assert world.client.get(f"/api/calls/CA{'9' * 32}", headers=AUTH).status_code == 404


def test_a_follow_up_is_stored_and_shown(world: World) -> None:
    response = world.client.post(
        f"/api/calls/{BOOKED}/follow-up", headers=AUTH, json={"note": "Called back, confirmed"}
    )
    assert response.status_code == 201
    assert response.json()["note"] == "Called back, confirmed"
    call = world.client.get(f"/api/calls/{BOOKED}", headers=AUTH).json()
    assert call["followed_up"] is True
    assert [f["note"] for f in call["follow_ups"]] == ["Called back, confirmed"]
    listed = world.client.get("/api/calls", headers=AUTH, params={"outcome": "booked"}).json()["calls"]
    assert listed[0]["followed_up"] is True
    unknown = world.client.post(f"/api/calls/CA{'9' * 32}/follow-up", headers=AUTH, json={"note": "x"})
    assert unknown.status_code == 404
    too_long = world.client.post(f"/api/calls/{BOOKED}/follow-up", headers=AUTH, json={"note": "x" * 2001})
    assert too_long.status_code == 422


def test_a_call_this_relay_is_carrying_shows_as_live_before_its_end_is_stored(world: World) -> None:
    world.app.state.relay = SimpleNamespace(
        calls={BOOKED: SimpleNamespace(attached=True), HUNG_UP: SimpleNamespace(attached=False)}
    )
    listed = {c["call_sid"]: c["live"] for c in world.client.get("/api/calls", headers=AUTH).json()["calls"]}
    assert listed == {LIVE: True, HUNG_UP: False, BOOKED: True}  # HUNG_UP is only a pre-opened session
    live_only = world.client.get("/api/calls", headers=AUTH, params={"outcome": "live"}).json()["calls"]
    assert [c["call_sid"] for c in live_only] == [LIVE, BOOKED]
    assert world.client.get(f"/api/calls/{BOOKED}", headers=AUTH).json()["outcome_label"] == "In progress"


def test_a_short_token_is_refused_and_a_blank_one_disables_the_back_office() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        load_settings(_env_file=None, backoffice_token="short")
    assert load_settings(_env_file=None, backoffice_token="  ").backoffice_token is None


def test_an_unmigrated_database_gets_a_plain_503_not_a_traceback(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path), sink=MemorySink())  # nobody ran `voice-agent db upgrade`
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    try:
        response = client.get("/api/calls", headers=AUTH)
        assert response.status_code == 503 and "unavailable" in response.json()["detail"]
        assert client.post(f"/api/calls/{BOOKED}/follow-up", headers=AUTH, json={}).status_code == 503
    finally:
        client.close()
        app.state.backoffice.store.close()


def test_the_list_says_message_taken_transferred_or_tried_and_flags_an_emergency(records: World) -> None:
    listed = {c["call_sid"]: c for c in records.client.get("/api/calls", headers=AUTH).json()["calls"]}
    came_back, connected, emergency = listed[CAME_BACK], listed[CONNECTED], listed[EMERGENCY]
    assert came_back["outcome_label"] == "Message taken" and came_back["message_taken"] is True
    assert (came_back["transfer_attempted"], came_back["transferred"]) == (True, False)  # nobody answered
    assert (connected["transfer_attempted"], connected["transferred"]) == (True, True)
    assert connected["message_taken"] is False
    assert emergency["flagged"] is True and emergency["flagged_at"].startswith("2026-11-27T15:00:03.7")
    assert [sid for sid, call in listed.items() if call["flagged"]] == [EMERGENCY]
    assert [sid for sid, call in listed.items() if call["transferred"]] == [CONNECTED]


def test_a_call_that_came_back_shows_both_segments_the_attempt_message_notice_and_recording(
    records: World,
) -> None:
    call = records.client.get(f"/api/calls/{CAME_BACK}", headers=AUTH).json()
    assert [
        (s["segment"], s["at_seconds"], s["duration_seconds"], s["end_reason"]) for s in call["segments"]
    ] == [
        (1, 0.0, 11.0, "transferred"),
        (2, 36.0, 14.0, "caller_hung_up"),
    ]
    assert call["duration_seconds"] == 50.0  # first start to last end: both segments
    [attempt] = call["transfer_attempts"]
    assert (attempt["segment"], attempt["reason"], attempt["result"]) == (1, "caller_asked", "no-answer")
    assert attempt["result_text"] == "nobody answered" and attempt["connected"] is False
    assert [t["segment"] for t in call["turns"]] == [1, 1, 1, 2, 2]
    assert call["messages"] == [
        {
            "at": "2026-11-29T15:00:42Z",
            "at_local": "Sun 29 Nov 2026, 10:00 AM",
            "caller_name": "Ana Ruiz",
            "callback_number": "+15553334444",
            "message": "My crown came off",
        }
    ]
    attempts = call["consent"]["notice_attempts"]
    assert [(a["attempt"], a["heard"], a["why_not"], a["said"]) for a in attempts] == [
        (1, False, "interrupted", "This call may"),
        (2, True, None, NOTICE),
    ]
    assert attempts[0]["why_not_text"] == "the caller spoke over it"
    [recording] = call["recordings"]
    assert recording["url"] == CAME_BACK_RECORDING_URL  # Twilio's, from the status callback
    assert (recording["status"], recording["duration_seconds"], recording["playable"]) == (
        "completed",
        43.0,
        True,
    )
    assert call["notes"] == []  # transfer and message notes are shown from their own tables
    assert call["flagged"] is False and call["flag_reason"] is None


def test_the_cost_comes_with_its_breakdown_by_part(records: World) -> None:
    call = records.client.get(f"/api/calls/{CAME_BACK}", headers=AUTH).json()
    parts = {part["part"]: part["usd"] for part in call["cost_breakdown"]}
    assert list(parts) == ["audio_in", "audio_out", "text", "transcription", "summary"]
    assert parts["summary"] == 0.0002 and parts["audio_out"] > parts["audio_in"] > 0
    assert call["cost_usd"] == pytest.approx(sum(parts.values()), abs=1e-5)
    assert [part["label"] for part in call["cost_breakdown"]][:2] == ["Caller audio", "Agent audio"]
    segment_costs = [segment["cost_usd"] for segment in call["segments"]]
    assert all(cost > 0 for cost in segment_costs)
    assert sum(segment_costs) + parts["summary"] == pytest.approx(call["cost_usd"], abs=1e-5)


def test_an_emergency_is_flagged_with_why_staff_were_alerted(records: World) -> None:
    call = records.client.get(f"/api/calls/{EMERGENCY}", headers=AUTH).json()
    assert call["flagged"] is True and call["flagged_local"] == "Fri 27 Nov 2026, 10:00 AM"
    assert call["flag_reason"].startswith("Possible emergency and no transfer number is set")
    assert [note["description"] for note in call["notes"]] == [
        "The caller described an emergency",
        "A transfer could not start (no transfer number is set)",
    ]
    assert call["transfer_attempts"] == [] and call["transfer_attempted"] is False


def test_a_recording_twilio_could_not_make_is_not_offered_for_playing(records: World) -> None:
    records.store([RecordingStatus(CAME_BACK, CAME_BACK_RECORDING, "absent", T_CAME_BACK + 60)])
    [recording] = records.client.get(f"/api/calls/{CAME_BACK}", headers=AUTH).json()["recordings"]
    assert (recording["status"], recording["playable"]) == ("absent", False)
