"""How a simulated call ended, and what the relay asked of the simulated Twilio REST API meanwhile.

A stream can end three ways from the caller's side: the relay closes it, Twilio stops it because the relay
redirected or completed the call over REST (the simulated REST API ends a linked caller's stream, as Twilio
does), or the caller hangs up. `CallWatch` tells them apart, turns each REST request into one readable line
(a transfer shows the dialled number and the whispered brief), and names the outcome: from the relay's own
end reason when it is known (the demo), else inferred from what the caller saw (``voice-agent call``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from app.sim.twilio_caller import SimulatedCaller
from app.sim.twilio_rest import RecordedRequest, SimulatedTwilioRest
from app.sim.twilio_webhook import new_sid
from app.twilio.signature import sign

if TYPE_CHECKING:
    from app.sim.call_command import CallReport

POLL_SECONDS = 0.02
SLACK_SECONDS = 0.5  # timer ticks and playout make the relay's limits fire a little late, never early
OUTCOMES = {
    "agent_hung_up": "hung up by agent after goodbye",
    "idle": "idle: hung up by agent after the caller stayed silent",
    "capped": "capped: hung up by agent at the call time limit",
    "caller_hung_up": "caller hung up",
    "failed": "model unavailable: apology, then hang-up",
}


@dataclass(frozen=True)
class TwilioAsk:
    """One request the relay made of the Twilio REST API, summarised."""

    at: float  # perf_counter time it was seen
    kind: str  # "redirect" | "complete" | "recording" | "other"
    summary: str
    dial_number: str | None = None
    whisper_url: str | None = None  # the transfer's whisper (a warm transfer, not a fail-over dial)


def describe_request(request: RecordedRequest, at: float) -> TwilioAsk:
    """A one-line account of a REST request (what a developer wants to see, not the raw form)."""
    form, path = request.form, request.path
    if path.endswith("/Recordings.json"):
        channels, track = form.get("RecordingChannels", "mono"), form.get("RecordingTrack", "both")
        return TwilioAsk(at, "recording", f"start recording ({channels}, track {track})")
    if "Twiml" in form:
        return _describe_twiml(form["Twiml"], at)
    if "Url" in form:
        return TwilioAsk(at, "redirect", f"redirect the call to {form['Url']}")
    if form.get("Status") in {"completed", "canceled"}:
        return TwilioAsk(at, "complete", "complete the call (hang up)")
    if path.endswith("/Participants.json"):
        return TwilioAsk(at, "other", f"add {form.get('To', '?')} to a conference")
    if path.endswith("/Calls.json"):
        return TwilioAsk(at, "other", f"place a call to {form.get('To', '?')}")
    return TwilioAsk(at, "other", f"{request.method} {path}")


def _describe_twiml(twiml: str, at: float) -> TwilioAsk:
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return TwilioAsk(at, "redirect", "redirect the call to unreadable TwiML")
    parts: list[str] = []
    number: str | None = None
    whisper: str | None = None
    for verb in root:
        if verb.tag == "Say":
            parts.append(f'say "{(verb.text or "").strip()}"')
        elif verb.tag == "Dial":
            target = verb.find("Number")
            number = ((target.text if target is not None else verb.text) or "").strip() or None
            ring = f" (ring {verb.get('timeout')} s)" if verb.get("timeout") else ""
            parts.append(f"dial {number}{ring}")
            if target is not None and target.get("url"):
                whisper = target.get("url")
                parts[-1] += ", whispering a brief to whoever answers"
        elif verb.tag == "Connect":
            parts.append("reconnect to the agent")
        elif verb.tag == "Hangup":
            parts.append("hang up")
        else:
            parts.append(verb.tag)
    summary = "redirect the call: " + (", then ".join(parts) or "empty TwiML")
    return TwilioAsk(at, "redirect", summary, dial_number=number, whisper_url=whisper)


async def fetch_whisper(caller: SimulatedCaller, public_url: str) -> str:
    """What the relay's whisper at `public_url` says to the person, asked as Twilio would (signed)."""
    form = {"CallSid": new_sid("CA"), "ParentCallSid": caller.call_sid, "AccountSid": caller.account_sid}
    signature = sign(caller.auth_token, public_url, form)
    local = public_url.replace(caller.public_base_url, caller.relay_url, 1)
    try:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            response = await client.post(local, data=form, headers={"X-Twilio-Signature": signature})
    except httpx.HTTPError as exc:
        return f"(the whisper request failed: {type(exc).__name__})"
    if response.status_code != 200:
        return f"(the whisper request failed with HTTP {response.status_code})"
    say = ET.fromstring(response.text).find("Gather/Say")
    return f'"{(say.text or "").strip()}"' if say is not None else "(no whisper)"


class CallWatch:
    """Follows one simulated call's ending and its REST requests; link it to the REST API as the caller."""

    def __init__(
        self,
        caller: SimulatedCaller,
        rest: SimulatedTwilioRest | None,
        note: Callable[[float, str], None],
    ) -> None:
        self.caller = caller
        self.call_sid = caller.call_sid  # what `SimulatedTwilioRest.link_caller` keys on
        self.rest = rest
        self.asks: list[TwilioAsk] = []
        self.twilio_ended_at: float | None = None
        self.relay_closed_at: float | None = None
        self._note = note
        self._seen = 0
        self._whispers_heard: set[str] = set()

    async def hang_up(self) -> None:
        """Called by the REST API when the relay redirected or completed the call: Twilio stops the stream."""
        self._collect()  # the request that ended the call comes first on the timeline
        if self.twilio_ended_at is None and self.relay_closed_at is None:
            self.twilio_ended_at = time.perf_counter()
        await self.caller.hang_up()

    @property
    def ended(self) -> bool:
        """The relay or Twilio ended the stream (the caller hanging up does not count)."""
        if (
            self.relay_closed_at is None
            and self.twilio_ended_at is None
            and self.caller.closed_by_relay.is_set()
        ):
            self.relay_closed_at = time.perf_counter()
        return self.relay_closed_at is not None or self.twilio_ended_at is not None

    @property
    def ended_at(self) -> float | None:
        return self.twilio_ended_at or self.relay_closed_at

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[None]:
        """Link to the REST API and note requests as they come, until the block exits."""
        if self.rest is not None:
            self.rest.link_caller(self)
        task = asyncio.create_task(self._follow(), name="call-watch")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._collect()
            await self._hear_whispers()

    async def _follow(self) -> None:
        while True:
            self._collect()
            _ = self.ended  # stamps the close time while it is fresh
            await self._hear_whispers()
            await asyncio.sleep(POLL_SECONDS)

    async def _hear_whispers(self) -> None:
        """Ask the relay for each transfer's whisper, as Twilio does when the person answers (the brief is
        sealed in the whisper URL, so only the relay can say it)."""
        for ask in self.asks:
            url = ask.whisper_url
            if url is None or url in self._whispers_heard:
                continue
            said = await fetch_whisper(self.caller, url)
            self._whispers_heard.add(url)  # only once heard: a cancelled fetch is retried when the call ends
            self._note(time.perf_counter(), f"the person who answers hears: {said}")

    def _collect(self) -> None:
        if self.rest is None:
            return
        requests = self.rest.requests
        for request in requests[self._seen :]:
            ask = describe_request(request, time.perf_counter())
            self.asks.append(ask)
            self._note(ask.at, f"relay asks Twilio: {ask.summary}")
        self._seen = len(requests)

    def ending(self) -> str:
        """How the stream ended, from the caller's side."""
        if self.twilio_ended_at is not None:
            update = next((a for a in reversed(self.asks) if a.kind in {"redirect", "complete"}), None)
            verb = "redirected" if update is not None and update.kind == "redirect" else "completed"
            return f"Twilio REST {verb} the call (Twilio stopped the stream)"
        if self.relay_closed_at is not None:
            return f"relay closed the stream (code {self.caller.close_code})"
        return "caller hangs up"

    def outcome_for(self, end_reason: str) -> str:
        """The outcome line for the relay's own end reason."""
        if end_reason == "transferred":
            transfer = self._transfer()
            return f"transferred to {transfer.dial_number}" if transfer else "transferred"
        return OUTCOMES.get(end_reason, end_reason)

    def _transfer(self) -> TwilioAsk | None:
        return next((a for a in reversed(self.asks) if a.dial_number), None)

    def inferred_outcome(
        self, report: CallReport, max_call_seconds: float, idle_hangup_seconds: float
    ) -> str:
        """The outcome as far as the caller can tell, given the relay's limits."""
        transfer = self._transfer()
        if transfer is not None:
            if transfer.whisper_url:
                return self.outcome_for("transferred")
            return f"model unavailable: apology, then transferred to {transfer.dial_number}"
        if any(a.kind == "redirect" and "hang up" in a.summary for a in self.asks):
            return OUTCOMES["failed"]
        end = self.ended_at
        if end is None:
            stayed = report.stay_seconds is not None
            return (
                "timed out: the relay kept the call open (caller hung up)"
                if stayed
                else OUTCOMES["caller_hung_up"]
            )
        completed = any(a.kind == "complete" for a in self.asks)
        if not completed and self.twilio_ended_at is None and self.caller.close_code not in (1000, None):
            return f"relay closed the stream with code {self.caller.close_code}"
        origin = self.caller.start_sent_at or self.caller.connected_at or end
        last_activity = report.last_caller_activity or origin
        silence = end - last_activity
        if end - origin >= max_call_seconds - SLACK_SECONDS:
            return f"{OUTCOMES['capped']} ({max_call_seconds:g} s)"
        if silence >= idle_hangup_seconds - SLACK_SECONDS:
            return f"idle: hung up by agent after {silence:.0f} s of caller silence"
        spoke = any(at > last_activity for at, _ in self.caller.media_arrivals)
        return OUTCOMES["agent_hung_up"] if spoke else "hung up by agent"
