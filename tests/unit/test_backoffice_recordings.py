"""A call's recording plays in the staff page: the relay fetches it from Twilio with the account's
credentials, for signed-in staff only, and only recordings of that call."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.unit.backoffice_world import BOOKED, HUNG_UP, TOKEN, World, open_world
from tests.unit.test_backoffice_auth import sign_in

RECORDING = "RE" + "b" * 32
MP3 = b"ID3" + bytes(range(256)) * 400  # ~100 kB, more than one chunk
ACCOUNT = "AC" + "f" * 32


class TwilioMedia(BaseHTTPRequestHandler):
    """Twilio's recording media, with HTTP authentication enforced (as an account may set it)."""

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:twilio-token".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        if self.path != f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING}.mp3":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(MP3)))
        self.end_headers()
        self.wfile.write(MP3)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TwilioMedia)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for world in open_world(tmp_path):
            base = f"http://127.0.0.1:{server.server_address[1]}"
            world.office.settings = world.office.settings.model_copy(update={"twilio_api_base_url": base})
            yield world
    finally:
        server.shutdown()
        server.server_close()


def test_staff_play_the_recording_through_the_relay(world: World) -> None:
    url = f"/backoffice/calls/{BOOKED}/recordings/{RECORDING}"
    assert world.client.get(url).status_code == 303  # not signed in: to the sign-in form
    sign_in(world, TOKEN)
    page = world.client.get(f"/backoffice/calls/{BOOKED}").text
    assert f'src="{url}"' in page
    response = world.client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.content == MP3


def test_only_a_recording_of_that_call_is_fetched(world: World) -> None:
    sign_in(world, TOKEN)
    other_call = world.client.get(f"/backoffice/calls/{HUNG_UP}/recordings/{RECORDING}")
    assert other_call.status_code == 404
    assert world.client.get(f"/backoffice/calls/{BOOKED}/recordings/RE{'0' * 32}").status_code == 404


def test_twilio_refusing_the_credentials_is_a_plain_error(world: World) -> None:
    sign_in(world, TOKEN)
    world.office.settings = world.office.settings.model_copy(update={"twilio_auth_token": SecretStr("wrong")})
    response = world.client.get(f"/backoffice/calls/{BOOKED}/recordings/{RECORDING}")
    assert response.status_code == 502 and "Recording unavailable" in response.text
