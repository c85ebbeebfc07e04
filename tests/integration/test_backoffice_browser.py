"""Staff use the back office in a real browser (Debian's Chromium driven by Playwright) on a call that the
real relay carried: relay -> outbox -> Redis -> worker -> PostgreSQL -> back office pages.

Screenshots of each page land in tests/output/backoffice/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from app.outbox import OutboxSink
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import answered, speak_and_hear_reply
from tests.integration.workers_harness import Database, RedisServer, Services, relay_settings, wait_until

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-test-token-0123456789"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "backoffice"


def _next_weekday_ten() -> str:
    day = dt.date.today() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return f"{day.isoformat()}T10:00:00-05:00"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before the browser starts
        pytest.fail("Chromium is missing: apt-get install -y chromium (.ci/run installs it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            await launched.close()


async def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_staff_sign_in_find_the_call_read_it_and_mark_it_followed_up(
    tmp_path: Path, pg: Database, pg_url: str, broker: RedisServer, services: Services, browser: Browser
) -> None:
    services.worker("backoffice-browser", concurrency=2)
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url))
    sink.start()
    script = [
        SimTurn(
            hears="I'd like to book a cleaning",
            say="Let me book that.",
            tool="book_appointment",
            arguments={"name": "Sam Lee", "service": "cleaning", "start": _next_weekday_ten()},
        ),
        SimTurn(say="You are booked. See you then."),
    ]
    overrides = {"backoffice_token": TOKEN, "database_url": pg_url}
    try:
        async with local_stack(
            sink=sink, first_audio_delay=0.05, script=script, settings_overrides=overrides
        ) as stack:
            async with stack.caller(from_number="+15551112222", caller_state="NY") as caller:
                await answered(caller)
                await speak_and_hear_reply(caller)
                await caller.wait_agent_silent(quiet=0.6, timeout=15)
            sid = caller.call_sid
            await asyncio.to_thread(
                wait_until,
                lambda: pg.scalar("SELECT count(*) FROM call_summaries WHERE call_sid = :sid", sid=sid) == 1,
                30,
                "the summary",
            )
            summary = str(pg.scalar("SELECT text FROM call_summaries WHERE call_sid = :sid", sid=sid))
            await _use_the_back_office(browser, stack.relay_url, sid, summary)
    finally:
        sink.close()
    assert pg.scalar("SELECT note FROM follow_ups WHERE call_sid = :sid", sid=sid) == "Rang Sam back, all set"


async def _use_the_back_office(browser: Browser, relay_url: str, sid: str, summary: str) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()

    # The API wants its bearer token, before and after signing in (a session cookie is no API credential).
    assert (api := await page.goto(f"{relay_url}/api/calls")) is not None and api.status == 401
    assert (schema := await page.goto(f"{relay_url}/openapi.json")) is not None and schema.status == 404
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    listed = await context.request.get(
        f"{relay_url}/api/calls", params={"q": "book a cleaning"}, headers=bearer
    )
    assert listed.status == 200 and [c["call_sid"] for c in (await listed.json())["calls"]] == [sid]

    # Not signed in: the calls list sends the browser to the sign-in form, which comes back after.
    await page.goto(f"{relay_url}/backoffice/calls")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Access code").fill("not the code")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not right")
    await _shot(page, "1-sign-in")
    await page.get_by_label("Access code").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Calls")).to_be_visible()

    cookie = next(c for c in await context.cookies() if c["name"] == "__Host-backoffice_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert TOKEN not in cookie["value"]

    # Find the call by words said in it; the caller's number is masked until clicked.
    await page.get_by_label("Words said in the call").fill("book a cleaning")
    await page.get_by_role("button", name="Show calls").click()
    row = page.get_by_role("row").filter(has_text="••• ••• 2222")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Appointment booked")
    full_number = row.locator(".full-number")
    await expect(full_number).to_be_hidden()
    await row.get_by_text("••• ••• 2222").click()
    await expect(full_number).to_have_text("+15551112222")
    await expect(full_number).to_be_visible()
    await _shot(page, "2-calls")

    # Open it: summary and the transcript as heard.
    await row.get_by_role("link", name="Open").click()
    await expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    await expect(page.locator(".summary")).to_have_text(summary)
    await expect(page.locator(".turn.caller")).to_contain_text(["I'd like to book a cleaning"])
    await expect(page.locator(".turn.agent").last).to_contain_text("You are booked. See you then.")
    await expect(page.get_by_text("book appointment")).to_be_visible()
    await expect(page.get_by_text("Nobody has followed up on this call yet.")).to_be_visible()
    # The cost by part, as the workers priced it from the relay's usage.
    await expect(page.get_by_role("table", name="Cost by part")).to_contain_text("Agent audio")
    assert sid in page.url
    await _shot(page, "3-call")

    # Mark it followed up through the CSRF-protected form.
    await page.get_by_label("Note").fill("Rang Sam back, all set")
    await page.get_by_role("button", name="Mark followed up").click()
    await expect(page.locator("#follow-ups")).to_contain_text("Rang Sam back, all set")
    await expect(page.locator("#follow-ups .badge")).to_have_text("Followed up")
    await _shot(page, "4-followed-up")
    assert (api := await page.goto(f"{relay_url}/api/calls/{sid}")) is not None and api.status == 401
    detail = await context.request.get(f"{relay_url}/api/calls/{sid}", headers=bearer)
    assert [f["note"] for f in (await detail.json())["follow_ups"]] == ["Rang Sam back, all set"]
    await context.close()
