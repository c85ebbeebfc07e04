"""Every call this relay process holds, from the webhook to the end of the stream.

The webhook *prepares* a call (its model session opens at once); the stream *claims* it by CallSid. A
prepared call whose stream never comes (the caller hung up while it rang) is closed after
`PREOPEN_TTL_SECONDS`. A stream that lands on an instance that never saw the webhook simply claims a fresh
call, which opens its own session. One call's failure never touches another: each call owns its tasks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from zoneinfo import ZoneInfo

from openai import AsyncOpenAI

from app.calls.call import Call
from app.calls.caller import CallerInfo
from app.calls.events import CallEventSink
from app.calls.history import HistoryStore, LocalHistoryStore
from app.calls.prompts import Prompts, load_prompts
from app.calls.routing import choose_model
from app.calls.tasks import TaskOwner
from app.functions.registry import ToolRegistry
from app.logs import get_logger
from app.metrics import RelayMetrics
from app.settings import Settings
from app.twilio.rest import AsyncTwilioRest

ENDED_STREAM_MEMORY_SECONDS = 900  # how long a stream this relay ended is refused if replayed

log = get_logger(__name__)


class Relay:
    """The calls of one relay process."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: AsyncOpenAI,
        tools: ToolRegistry,
        sink: CallEventSink,
        rest: AsyncTwilioRest | None = None,
        metrics: RelayMetrics | None = None,
        history: HistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.tools = tools
        self.sink = sink
        self.rest = rest
        self.metrics = metrics or RelayMetrics()
        self.calls: dict[str, Call] = {}
        self.history = history if history is not None else LocalHistoryStore()
        # Replay guards, each entry kept (monotonic deadline) only while it could still matter.
        self._spent_tokens: dict[str, float] = {}
        self._ended_streams: dict[tuple[str, int], float] = {}
        self.tasks = TaskOwner("relay")
        self.draining = False
        self._prompts: tuple[dt.date, Prompts] | None = None
        self._zone = ZoneInfo(settings.business_timezone)

    def prompts(self) -> Prompts:
        """Prompts filled for today, read from disk once a day."""
        today = dt.datetime.now(self._zone).date()
        if self._prompts is None or self._prompts[0] != today:
            self._prompts = (today, load_prompts(self.settings, today=today))
        return self._prompts[1]

    def _new_call(self, caller: CallerInfo, history: list[str] | None = None) -> Call:
        call = Call(
            caller,
            settings=self.settings,
            client=self.client,
            tools=self.tools,
            sink=self.sink,
            prompts=self.prompts(),
            model=choose_model(self.settings, caller.from_number, escalated=caller.resume is not None),
            rest=self.rest,
            history=history,
            metrics=self.metrics,
        )
        call.control.history_store = self.history
        self.calls[caller.call_sid] = call
        call.start()
        return call

    async def prepare_return(self, caller: CallerInfo) -> Call:
        """A caller back from a hand-off that did not connect: open their session with the conversation so
        far, read from wherever the transferring instance kept it (short timeout, empty on failure)."""
        existing = self.calls.get(caller.call_sid)
        if existing is not None and not existing.attached and existing.caller.resume == caller.resume:
            return existing
        return self.prepare(caller, await self.history.load(caller.call_sid))

    def prepare(self, caller: CallerInfo, history: list[str] | None = None) -> Call:
        """Open the model session for a ringing call (idempotent: Twilio may retry the webhook)."""
        existing = self.calls.get(caller.call_sid)
        if existing is not None and not existing.ended.is_set():
            if caller.resume is None or (not existing.attached and existing.caller.resume == caller.resume):
                return existing
            # The caller is back from a transfer while the old stream is still closing.
            self.tasks.spawn(self.finish(existing, "transferred"), "finish-old")
        call = self._new_call(caller, history)
        self.tasks.spawn(self._expire_if_unclaimed(call), "preopen-ttl")
        return call

    def spend_stream_token(self, token: str) -> bool:
        """True the first time this process sees `token`: a stream token opens one stream only."""
        now = time.monotonic()
        self._spent_tokens = {k: until for k, until in self._spent_tokens.items() if until > now}
        if token in self._spent_tokens:
            return False
        # Remembered a little longer than any relay would still take it (clock skew between instances).
        self._spent_tokens[token] = now + self.settings.stream_token_ttl_seconds + 30
        return True

    async def claim(self, caller: CallerInfo) -> Call:
        """The call a stream binds to: the prepared one, or a fresh one when this instance has none (a
        returning caller's fresh call gets the conversation so far from the history store).

        A stream for a call segment this relay already ended is refused (`StreamEndedError`): a return
        stream after a failed transfer is a new segment, so it is not.
        """
        now = time.monotonic()
        self._ended_streams = {k: until for k, until in self._ended_streams.items() if until > now}
        if (caller.call_sid, caller.segment) in self._ended_streams:
            raise StreamEndedError(caller.call_sid)
        call = self.calls.get(caller.call_sid)
        if call is not None and not call.attached and not call.ended.is_set():
            return call
        if call is not None:
            raise DuplicateStreamError(caller.call_sid)
        log.info("stream_without_preopened_session", call_sid=caller.call_sid)
        history = await self.history.load(caller.call_sid) if caller.resume else None
        if caller.call_sid in self.calls:  # another stream bound while the history was read
            raise DuplicateStreamError(caller.call_sid)
        return self._new_call(caller, history)

    async def finish(self, call: Call, reason: str) -> None:
        """End a call and forget it."""
        try:
            await call.end(reason)
        finally:
            if self.calls.get(call.sid) is call:
                del self.calls[call.sid]
            if call.attached:
                self._ended_streams[(call.sid, call.caller.segment)] = (
                    time.monotonic() + ENDED_STREAM_MEMORY_SECONDS
                )
            self.metrics.call_ended(call)
            if call.end_reason == "transferred":  # the conversation now includes the hand-off line
                lines = call.history + call.transcript.condensed()
                self.tasks.spawn(self.history.save(call.sid, lines), "save-history")

    async def _expire_if_unclaimed(self, call: Call) -> None:
        await asyncio.sleep(self.settings.preopen_ttl_seconds)
        if not call.attached and not call.ended.is_set():
            log.info("preopened_session_expired", call_sid=call.sid)
            await self.finish(call, "never_connected")

    @property
    def live_calls(self) -> int:
        return sum(1 for call in self.calls.values() if call.attached)

    @property
    def at_capacity(self) -> bool:
        """True when taking another call would degrade the calls already here (see bench/relay_bench.py)."""
        return len(self.calls) >= self.settings.max_live_calls

    async def shutdown(self) -> None:
        """End every call (process exit) and stop background work."""
        await asyncio.gather(*(self.finish(c, "relay_shutdown") for c in list(self.calls.values())))
        await self.tasks.cancel_all()
        await self.history.close()


class DuplicateStreamError(Exception):
    """A second stream for a call that already has one."""


class StreamEndedError(Exception):
    """A stream for a call segment this relay already ended (a replayed `start`)."""
