"""Giving the recording notice until the caller has really heard it.

The notice is the greeting's fixed first sentence, which the model is told to say word for word. It counts
as given only when
- the model's own output transcript of that response starts with the notice (a paraphrase or an omission
  is not the notice), and
- the response completed and its audio played to the end: every mark echoed, no `clear` in between (a
  caller saying "hello?" over the greeting cuts it; a model reconnect voids it).
Otherwise it is given again, on its own, at the next opportunity (the agent quiet, the caller not speaking),
up to `MAX_NOTICE_ATTEMPTS`; recording waits for it. Every attempt is reported (`ConsentNoticeAttempt`)
with what the model said, for the audit.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

from app.calls.events import ConsentNoticeAttempt

if TYPE_CHECKING:
    from app.calls.call import Call
    from app.calls.responses import ResponseRequest

MAX_NOTICE_ATTEMPTS = 4
NOTICE_PLAY_TIMEOUT_SECONDS = 30.0
OPPORTUNITY_POLL_SECONDS = 0.1
_WORDS = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower().replace("\u2019", "'"))


def notice_spoken(notice: str, said: str) -> bool:
    """True when `said` begins with the notice word for word (case and punctuation aside)."""
    expected = _words(notice)
    return bool(expected) and _words(said)[: len(expected)] == expected


class NoticeTracker:
    """What the model said in each response and how each response ended (fed from the model's events)."""

    def __init__(self) -> None:
        self._said: dict[str, list[str]] = {}
        self._items: dict[str, set[str]] = {}
        self._status: dict[str, str] = {}

    def on_transcript(self, response_id: str, item_id: str, transcript: str) -> None:
        """`response.output_audio_transcript.done`: the model's own words for one output item."""
        self._said.setdefault(response_id, []).append(transcript)
        self._items.setdefault(response_id, set()).add(item_id)

    def on_done(self, response_id: str, status: str) -> None:
        """`response.done`: completed, cancelled, failed or incomplete."""
        self._status[response_id] = status

    def judge(
        self, request: ResponseRequest, dropped_items: set[str], played: bool
    ) -> tuple[str, str | None]:
        """(what was said, why it does not count or None when the notice was heard)."""
        response_id = request.response_id
        if response_id is None:
            return "", "never_started"
        said = " ".join(part.strip() for part in self._said.get(response_id, []) if part.strip())
        if self._items.get(response_id, set()) & dropped_items:
            return said, "interrupted"  # the caller talked over it: Twilio was told to clear
        status = self._status.get(response_id)
        if status is None:
            return said, "model_reconnected"
        if status != "completed":
            return said, f"response_{status}"
        if not played:
            return said, "not_played"
        return said, None


async def _next_opportunity(call: Call) -> bool:
    """Until the agent is quiet, no response runs and the caller is not speaking; False if the call ended."""
    while not call.ended.is_set():
        quiet = call.drained.is_set() and not call.gate.busy and not call.idle.caller_speaking
        if call.model_ready.is_set() and quiet and not call.control.busy:
            return True
        await asyncio.sleep(OPPORTUNITY_POLL_SECONDS)
    return False


async def give_notice(call: Call, notice: str, tracker: NoticeTracker) -> float | None:
    """Make sure the caller heard the notice (the greeting first, then on its own); returns when it was
    heard, or None if it never was (the call ended, or every attempt failed)."""
    request = call.greeting
    for attempt in range(1, MAX_NOTICE_ATTEMPTS + 1):
        if request is None:
            return None
        played = await call.wait_heard(request, NOTICE_PLAY_TIMEOUT_SECONDS)
        said, why_not = tracker.judge(request, call.dropped_items, played)
        if why_not is None and not notice_spoken(notice, said):
            why_not = "not_verbatim"
        heard_at = time.time()
        call.emit(
            ConsentNoticeAttempt(
                call_sid=call.sid,
                attempt=attempt,
                at=heard_at,
                heard=why_not is None,
                said=said,
                why_not=why_not,
            )
        )
        if why_not is None:
            return heard_at
        call.log.info("consent_notice_not_heard", attempt=attempt, why=why_not)
        if attempt == MAX_NOTICE_ATTEMPTS or not await _next_opportunity(call):
            return None
        request = await call.say(call.prompts.notice_instructions(notice), "consent_notice")
    return None
