"""Staff read the call's own record on the pages: a transfer that came back is "tried", not "transferred";
its two parts, the message, each notice attempt, the recording and the cost by part show; an emergency that
alerted staff is marked in the list and on the page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.backoffice_world import (
    CAME_BACK,
    CAME_BACK_RECORDING,
    CONNECTED,
    EMERGENCY,
    HUNG_UP,
    NOTICE,
    World,
    open_world,
)
from tests.unit.test_backoffice_auth import sign_in


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    for world in open_world(tmp_path, records=True):
        sign_in(world)
        yield world


def _row_of(page: str, call_sid: str) -> str:
    """The calls list's table row that links to `call_sid`."""
    rows: list[str] = re.findall(r"<tr[^>]*>.*?</tr>", page, flags=re.S)
    [row] = [row for row in rows if f"/backoffice/calls/{call_sid}" in row]
    return row


def _text(fragment: str) -> str:
    """What a person reads: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_list_tells_tried_from_transferred_names_a_message_and_marks_an_emergency(world: World) -> None:
    page = world.client.get("/backoffice/calls").text
    came_back, connected = _text(_row_of(page, CAME_BACK)), _text(_row_of(page, CONNECTED))
    assert "Message taken" in came_back and "Tried" in came_back
    assert "Transferred to staff" in connected and "Yes" in connected and "Tried" not in connected
    emergency = _row_of(page, EMERGENCY)
    assert 'class="flagged"' in emergency and "Emergency alert" in _text(emergency)
    for quiet in (CAME_BACK, CONNECTED, HUNG_UP):
        assert "Emergency alert" not in _row_of(page, quiet)
    assert "Tried" in _text(_row_of(page, HUNG_UP))


def test_a_call_that_came_back_shows_its_parts_message_notice_recording_and_cost(world: World) -> None:
    page = world.client.get(f"/backoffice/calls/{CAME_BACK}").text
    said = _text(page)
    assert "Part 1" in said and "Part 2" in said and "Ended: handed to a person" in said
    assert "Ended: the caller hung up" in said
    assert "Came back Nobody answered Transfer to a person (caller asked)" in said
    assert "Back with the agent (part 2): the transfer did not connect (nobody answered)" in said
    assert "Ana Ruiz" in said and "+15553334444" in said and "My crown came off" in said
    assert "Not heard the caller spoke over it" in said and "“This call may”" in said
    assert f"Heard · Sun 29 Nov 2026, 10:00 AM “{NOTICE}”" in said
    assert "0:43 long · ready" in said
    assert f'src="/backoffice/calls/{CAME_BACK}/recordings/{CAME_BACK_RECORDING}"' in page
    assert "Cost by part" in said and "Caller audio" in said and "Summary $0.0002" in said
    assert "Transcription" not in said  # a part that cost nothing is left out of the table
    assert "Flagged as an emergency" not in said


def test_an_emergency_call_page_says_staff_were_alerted_and_why(world: World) -> None:
    said = _text(world.client.get(f"/backoffice/calls/{EMERGENCY}").text)
    assert "Flagged as an emergency" in said
    assert "no transfer number is set: the caller was told to dial the emergency number" in said
    assert "Staff were alerted at Fri 27 Nov 2026, 10:00 AM" in said
    assert "A transfer could not start (no transfer number is set)" in said
    assert "staff alert" not in said.lower()  # shown as the flag, not repeated as a raw note
