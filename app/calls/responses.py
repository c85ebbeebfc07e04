"""One model response at a time.

`response.create` while a response is active fails with `conversation_already_has_active_response` (trap 8),
and server VAD starts responses of its own. The gate tracks the active response from the server's own events,
queues our requests until `response.done`, and re-queues a request the server refused in a race. A request
marked `supersedable` (speak a tool's result) is dropped when another response starts after it was queued:
that response already sees the tool output, so a second one would repeat it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

SendText = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class ResponseRequest:
    response: dict[str, Any] = field(default_factory=dict)
    supersedable: bool = False
    purpose: str = "reply"
    response_id: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # done, dropped or superseded


class ResponseGate:
    """Serialises `response.create` for one model session."""

    def __init__(self, send: SendText) -> None:
        self._send = send
        self._queue: deque[ResponseRequest] = deque()
        self._in_flight: ResponseRequest | None = None  # sent, `response.created` not seen yet
        self.active_id: str | None = None
        self.active_purpose: str | None = None
        self._active_request: ResponseRequest | None = None
        self._cancel_sent_for: str | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        """True while a response is running or one of ours is on its way."""
        return self.active_id is not None or self._in_flight is not None

    async def request(self, request: ResponseRequest) -> ResponseRequest:
        """Ask for a response now, or as soon as the running one is done; returns the request."""
        self._queue.append(request)
        self._idle.clear()
        await self._pump()
        return request

    async def wait_idle(self) -> None:
        """Until no response is running, on its way, or queued."""
        await self._idle.wait()

    def _settle(self) -> None:
        if not self.busy and not self._queue:
            self._idle.set()

    async def _pump(self) -> None:
        if self.busy or not self._queue:
            self._settle()
            return
        request = self._queue.popleft()
        self._in_flight = request
        event: dict[str, Any] = {"type": "response.create"}
        if request.response:
            event["response"] = request.response
        try:
            await self._send(json.dumps(event))
        except Exception:
            # The socket is gone; the model task reconnects or fails the call over. Nothing is running.
            self._in_flight = None
            request.finished.set()
            self._settle()

    def on_created(self, response_id: str) -> None:
        """`response.created`: ours if one was in flight, else a VAD-triggered reply."""
        if self._in_flight is not None:
            request = self._in_flight
            self._in_flight = None
        else:
            request = ResponseRequest(purpose="reply")
            # A reply to new caller speech sees everything already in the conversation.
            for queued in [r for r in self._queue if r.supersedable]:
                queued.finished.set()
            self._queue = deque(r for r in self._queue if not r.supersedable)
        request.response_id = response_id
        self._active_request = request
        self.active_purpose = request.purpose
        self.active_id = response_id
        self._idle.clear()

    async def on_done(self, response_id: str) -> None:
        """`response.done`: the next queued request may go."""
        if self.active_id == response_id:
            if self._active_request is not None:
                self._active_request.finished.set()
            self._active_request = None
            self.active_id = None
            self.active_purpose = None
        await self._pump()

    async def on_race_error(self) -> None:
        """The server refused our create because a response was active: retry after it."""
        if self._in_flight is not None:
            self._queue.appendleft(self._in_flight)
            self._in_flight = None

    async def cancel_active(self) -> str | None:
        """Cancel the running response, once; returns its id, or None when nothing was running."""
        response_id = self.active_id
        if response_id is None or self._cancel_sent_for == response_id:
            return None
        self._cancel_sent_for = response_id
        await self._send(json.dumps({"type": "response.cancel", "response_id": response_id}))
        return response_id

    def drop_queued(self) -> None:
        """Forget queued requests (the call is ending)."""
        for request in self._queue:
            request.finished.set()
        self._queue.clear()
        self._settle()

    def reset(self) -> None:
        """A new model session: nothing is running there, and queued requests are void."""
        for request in (self._in_flight, self._active_request, *self._queue):
            if request is not None:
                request.finished.set()
        self._queue.clear()
        self._in_flight = None
        self._active_request = None
        self.active_id = None
        self.active_purpose = None
        self._idle.set()
