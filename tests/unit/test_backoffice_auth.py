"""Staff sign-in and pages: signed expiring cookies with the right flags, CSRF on every form, rate-limited
guessing, and a redirect to sign in for everything else."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import text

from app.backoffice.auth import SESSION_COOKIE, SIGN_IN_COOKIE, SessionSigner, SignInLimiter
from app.calls.events import CallStarted
from tests.unit.backoffice_world import BOOKED, HUNG_UP, T_BOOKED, TOKEN, World, open_world


class Response(Protocol):
    """What these tests read of a test client's response (whichever httpx the client is built on)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def headers(self) -> Any: ...


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(tmp_path)


def csrf_of(response: Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(world: World, token: str = TOKEN, next_path: str = "/backoffice/calls") -> Response:
    form = world.client.get("/backoffice/sign-in", params={"next": next_path})
    return world.client.post(
        "/backoffice/sign-in", data={"token": token, "csrf": csrf_of(form), "next": next_path}
    )


def test_pages_redirect_to_sign_in_and_come_back_after(world: World) -> None:
    for path in ("/backoffice", "/backoffice/calls?q=cleaning", f"/backoffice/calls/{BOOKED}"):
        response = world.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/backoffice/sign-in?next=")
    posted = world.client.post(f"/backoffice/calls/{BOOKED}/follow-up", data={"note": "x"})
    assert posted.status_code == 303 and "sign-in" in posted.headers["location"]
    signed = sign_in(world, next_path="/backoffice/calls?q=cleaning")
    assert signed.status_code == 303 and signed.headers["location"] == "/backoffice/calls?q=cleaning"
    page = world.client.get("/backoffice/calls?q=cleaning")
    assert page.status_code == 200 and "1 call " in page.text


def test_the_session_cookie_is_signed_httponly_secure_and_samesite(world: World) -> None:
    response = sign_in(world)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "secure" in flags and "samesite=lax" in flags and "path=/" in flags
    value = cookie.split(";")[0].split("=", 1)[1]
    assert TOKEN not in value and value.startswith("session.")
    assert response.headers["cache-control"] == "no-store"
    world.client.cookies.clear()

    def status_with(cookie_value: str) -> int:
        headers = {"Cookie": f"{SESSION_COOKIE}={cookie_value}"}
        return world.client.get("/backoffice/calls", headers=headers).status_code

    assert status_with(value) == 200
    assert status_with(value[:-2] + ("AA" if value[-2:] != "AA" else "BB")) == 303  # tampered
    assert status_with(TOKEN) == 303  # the token itself is no session


def test_a_session_expires(world: World) -> None:
    clock = FakeClock()
    world.office.signer = SessionSigner(TOKEN, clock=clock)
    sign_in(world)
    assert world.client.get("/backoffice/calls").status_code == 200
    clock.now += 12 * 3600 + 1
    assert world.client.get("/backoffice/calls").status_code == 303


def test_sign_in_needs_its_form_token(world: World) -> None:
    world.client.get("/backoffice/sign-in")
    forged = world.client.post("/backoffice/sign-in", data={"token": TOKEN, "csrf": "forged"})
    assert forged.status_code == 403
    assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")
    world.client.cookies.delete(SIGN_IN_COOKIE)
    assert world.client.post("/backoffice/sign-in", data={"token": TOKEN}).status_code == 403


def test_wrong_codes_are_rate_limited_per_address(world: World) -> None:
    clock = FakeClock()
    world.office.limiter = SignInLimiter(max_failures=5, window_seconds=300, clock=clock)
    for _ in range(5):
        assert sign_in(world, token="not-the-token-at-all").status_code == 401
    blocked = sign_in(world)  # even the right code waits
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert SESSION_COOKIE not in blocked.headers.get("set-cookie", "")
    clock.now += 301
    assert sign_in(world).status_code == 303


def test_a_follow_up_form_without_its_csrf_token_changes_nothing(world: World) -> None:
    sign_in(world)
    page = world.client.get(f"/backoffice/calls/{BOOKED}")
    assert page.status_code == 200
    rejected = world.client.post(f"/backoffice/calls/{BOOKED}/follow-up", data={"note": "forged"})
    assert rejected.status_code == 403
    wrong = world.client.post(f"/backoffice/calls/{BOOKED}/follow-up", data={"note": "forged", "csrf": "x"})
    assert wrong.status_code == 403
    assert "Nobody has followed up" in world.client.get(f"/backoffice/calls/{BOOKED}").text
    saved = world.client.post(
        f"/backoffice/calls/{BOOKED}/follow-up", data={"note": "Rang back", "csrf": csrf_of(page)}
    )
    assert saved.status_code == 303
    again = world.client.get(f"/backoffice/calls/{BOOKED}").text
    assert "Rang back" in again and "Followed up" in again


def test_an_oversized_or_overstuffed_form_is_refused(world: World) -> None:
    sign_in(world)
    csrf = csrf_of(world.client.get(f"/backoffice/calls/{BOOKED}"))
    url = f"/backoffice/calls/{BOOKED}/follow-up"
    assert world.client.post(url, data={"note": "x" * 20_000, "csrf": csrf}).status_code == 403
    stuffed = {f"f{n}": "x" for n in range(30)} | {"csrf": csrf}
    assert world.client.post(url, data=stuffed).status_code == 403
    assert world.client.post(url, data={"note": "ok", "csrf": csrf}).status_code == 303


def test_sign_out_needs_the_csrf_token_and_ends_the_session(world: World) -> None:
    sign_in(world)
    page = world.client.get("/backoffice/calls")
    assert world.client.post("/backoffice/sign-out", data={}).status_code == 403
    out = world.client.post("/backoffice/sign-out", data={"csrf": csrf_of(page)})
    assert out.status_code == 303
    assert world.client.get("/backoffice/calls").status_code == 303


def test_sign_in_only_returns_to_back_office_pages(world: World) -> None:
    assert sign_in(world, next_path="https://evil.example/").headers["location"] == "/backoffice/calls"
    assert world.client.get("/backoffice/sign-in", params={"next": "//evil.example"}).status_code == 303


def test_limiter_forgets_old_failures_and_bounds_its_memory() -> None:
    clock = FakeClock()
    limiter = SignInLimiter(max_failures=2, window_seconds=10, max_addresses=3, clock=clock)
    limiter.failed("a")
    clock.now += 11
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(10)
    for address in ("b", "c", "d", "e"):
        limiter.failed(address)
    assert len(limiter._failures) <= 3


def test_signed_values_are_bound_to_the_token_and_their_kind() -> None:
    signer = SessionSigner(TOKEN)
    value = signer.issue("session", 60)
    assert signer.verify(value, "session") is not None
    assert signer.verify(value, "sign_in") is None
    assert SessionSigner("another-token-0123456789").verify(value, "session") is None
    session = signer.verify(value, "session")
    assert signer.csrf_ok(session, signer.csrf_token(session)) if session else False
    assert not signer.csrf_ok(session, "")


def test_the_calls_page_filters_and_pages_keeping_its_filters(world: World) -> None:
    sign_in(world)
    booked = world.client.get("/backoffice/calls", params={"outcome": "booked", "from": "not-a-date"})
    assert booked.status_code == 200
    assert "1 call " in booked.text and BOOKED in booked.text and HUNG_UP not in booked.text
    world.store(
        [
            CallStarted(f"CA{n:032x}", "+15550000000", None, None, "gpt-realtime-mini", T_BOOKED - n * 60)
            for n in range(1, 31)
        ]
    )
    first = world.client.get("/backoffice/calls", params={"to": "2026-11-30"})
    assert "31 calls" in first.text and "Page 1 of 2" in first.text
    assert 'href="?to=2026-11-30&amp;page=2"' in first.text  # the next page keeps the filter
    second = world.client.get("/backoffice/calls", params={"to": "2026-11-30", "page": "2"})
    assert "Page 2 of 2" in second.text and second.text.count("/backoffice/calls/CA") == 6
    unknown = world.client.get("/backoffice/calls/CA" + "9" * 32)
    assert unknown.status_code == 404 and "Call not found" in unknown.text


def test_an_unreachable_database_gets_a_plain_page(world: World) -> None:
    sign_in(world)
    with world.sessions.begin() as session:
        session.execute(text("DROP TABLE follow_ups"))  # as if the migration adding it had not run
    page = world.client.get(f"/backoffice/calls/{BOOKED}")
    assert page.status_code == 503 and "cannot be reached right now" in page.text
