"""One connection to the simulated Realtime server: state, the wire, responses, records and faults.

The protocol logic for each client event lives in realtime_handlers; this class owns the socket, every task
the session starts (responses, timers), and the records tests assert on (`received`, `sent`, `truncations`,
`cancelled_responses`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from app.sim.realtime_brain import Brain, TurnPlan
from app.sim.realtime_conversation import Conversation
from app.sim.realtime_handlers import handle_message
from app.sim.realtime_input import InputAudio
from app.sim.realtime_response import ResponseRun, ResponseSpec, ResponseTiming, Tts
from app.sim.realtime_script import SimTurn
from app.sim.realtime_session_config import default_session, new_id
from app.sim.realtime_turns import start_idle_timer
from app.sim.realtime_validation import ServerEventInvalid, server_event_problems

__all__ = ["SessionShared", "SimSession"]

log = logging.getLogger(__name__)

SESSION_CAP_REASON = "Your session hit the maximum duration of 60 minutes."


@dataclass
class SessionShared:
    """What every session of one server shares: its brains' maker, timing, voice and the error records."""

    new_brain: Callable[[], Brain]  # the scripted simulator returns its one shared script every time
    timing: ResponseTiming
    tts: Tts
    validation_errors: list[str]
    race_errors: list[str]


class SimSession:
    """A simulated Realtime session; tests reach it through `RealtimeSimulator.sessions`."""

    def __init__(self, shared: SessionShared, ws: ServerConnection, model: str, index: int) -> None:
        self.shared = shared
        self.ws = ws
        self.model = model
        self.index = index
        self.config: dict[str, Any] = default_session(model)
        self.brain = shared.new_brain()
        self.brain.configure(self.config)
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.truncations: list[tuple[str, int]] = []
        self.cancelled_responses: list[str] = []
        self.closed = asyncio.Event()
        self.conversation = Conversation(new_id("conv"))
        self.input = InputAudio()
        self.input.configure(self.config["audio"]["input"])
        self.active_responses: dict[str, ResponseRun] = {}
        self.caller_turns = 0
        self.conversation_responses = 0
        self.voice_locked = False
        self.pending_user_item_id: str | None = None
        self.pending_auto_response = False
        self.idle_timer: asyncio.Task[None] | None = None
        self._last_input_tokens = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Condition()

    @property
    def session_id(self) -> str:
        """The `sess_...` id reported in session.created."""
        return str(self.config["id"])

    # ---- records -------------------------------------------------------------------------------------

    def received_of(self, type: str) -> list[dict[str, Any]]:  # noqa: A002 - the protocol's own word
        """Client events of `type` received so far."""
        return [event for event in self.received if event.get("type") == type]

    def sent_of(self, type: str) -> list[dict[str, Any]]:  # noqa: A002
        """Server events of `type` sent so far."""
        return [event for event in self.sent if event.get("type") == type]

    async def wait_for(
        self,
        type: str,  # noqa: A002
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The first client event of `type` (matching `predicate`) received, waiting for it if needed."""
        return await self._wait_in(self.received, "received", type, predicate, timeout)

    async def wait_for_sent(
        self,
        type: str,  # noqa: A002
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The first server event of `type` (matching `predicate`) sent, waiting for it if needed."""
        return await self._wait_in(self.sent, "sent", type, predicate, timeout)

    async def _wait_in(
        self,
        events: list[dict[str, Any]],
        label: str,
        type: str,  # noqa: A002
        predicate: Callable[[dict[str, Any]], bool] | None,
        timeout: float,
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next(
                (e for e in events if e.get("type") == type and (predicate is None or predicate(e))), None
            )

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: find() is not None)
        except TimeoutError:
            seen = sorted({str(event.get("type")) for event in events})
            raise TimeoutError(
                f"session {self.index}: no {label} {type!r} within {timeout}s; {label}: {seen}"
            ) from None
        found = find()
        assert found is not None
        return found

    async def _record(self, events: list[dict[str, Any]], event: dict[str, Any]) -> None:
        async with self._changed:
            events.append(event)
            self._changed.notify_all()

    # ---- the wire ------------------------------------------------------------------------------------

    async def send_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Stamp an event_id, validate against the SDK models (a failure is a simulator bug), send, record."""
        event = {"event_id": new_id("event"), **payload}
        problems = server_event_problems(event)
        if problems:
            message = f"sent an invalid {event.get('type')!r}: {problems}"
            self.report_bug(message)
            raise ServerEventInvalid(message)
        async with self._send_lock:
            await self.ws.send(json.dumps(event))
            log.debug("sim session %d sent %s", self.index, event["type"])
            if event["type"] == "response.output_audio.delta":
                self.voice_locked = True
            await self._record(self.sent, event)
        return event

    async def send_error(
        self,
        code: str | None,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,  # noqa: A002
    ) -> None:
        """Send an `error` event (A6 shape; error.event_id null, as the service usually leaves it)."""
        error = {"type": type, "code": code, "message": message, "param": param, "event_id": None}
        await self.send_event({"type": "error", "error": error})

    async def reject_client_event(
        self, event_type: object, problems: list[str], code: str = "invalid_event"
    ) -> None:
        """Answer an invalid client event with an `error` and record it in `validation_errors`."""
        self.shared.validation_errors.append(f"session {self.index}: {event_type}: {'; '.join(problems)}")
        await self.send_error(code, problems[0])

    async def record_received(self, event: dict[str, Any]) -> None:
        """Keep a client event for assertions."""
        log.debug("sim session %d received %s", self.index, event.get("type"))
        await self._record(self.received, event)

    def own(self, coroutine: Any) -> asyncio.Task[None]:
        """Start a task this session cancels when it closes."""
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None and not isinstance(failure, ConnectionClosed | ServerEventInvalid):
            self.report_bug(f"task failed: {failure!r}", failure)

    def report_bug(self, what: str, failure: BaseException | None = None) -> None:
        """Record a simulator defect where the relay's tests will see it (`validation_errors`)."""
        message = f"SIMULATOR BUG, session {self.index}: {what}"
        self.shared.validation_errors.append(message)
        log.error(message, exc_info=failure)

    async def shutdown_tasks(self) -> None:
        """Cancel and await every task this session started."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- responses -----------------------------------------------------------------------------------

    def conversation_response(self) -> ResponseRun | None:
        """The active in-conversation response, if any (out-of-band ones do not block a new response)."""
        return next((run for run in self.active_responses.values() if run.in_conversation), None)

    def choose_turn(self, params: dict[str, Any]) -> TurnPlan:
        """Ask the brain what a new response says (rules in realtime_script and realtime_brain)."""
        instructions = params.get("instructions")
        if params.get("conversation") == "none":
            return self.brain.out_of_band_turn(instructions)
        if self.caller_turns == 0 and self.conversation_responses == 0:
            return self.brain.greeting_turn(instructions)
        return self.brain.next_turn(instructions)

    def start_response(self, turn: TurnPlan, params: dict[str, Any]) -> ResponseRun:
        """Create and start streaming a response; the caller has checked for races."""
        in_conversation = params.get("conversation") != "none"
        if in_conversation:
            self.conversation_responses += 1
        self.cancel_idle_timer()
        output = self.config["audio"]["output"]
        response_output = (params.get("audio") or {}).get("output") or {}
        instructions = str(params.get("instructions", self.config.get("instructions")) or "")
        tools = params.get("tools", self.config.get("tools")) or []
        input_tokens = (
            self.conversation.input_tokens(instructions, tools)
            if in_conversation
            else (len(instructions) // 4, 0)
        )
        cached = min(self._last_input_tokens, sum(input_tokens)) // 64 * 64
        self._last_input_tokens = sum(input_tokens)
        spec = ResponseSpec(
            turn=turn,
            conversation=self.conversation if in_conversation else None,
            output_modalities=list(params.get("output_modalities") or self.config["output_modalities"]),
            output_format=dict(response_output.get("format") or output["format"]),
            voice=response_output.get("voice", output["voice"]),
            max_output_tokens=params.get("max_output_tokens", self.config.get("max_output_tokens", "inf")),
            metadata=params.get("metadata"),
            input_tokens=input_tokens,
            cached_tokens=cached,
        )
        run = ResponseRun(
            spec,
            send=self.send_event,
            tts=self.shared.tts,
            timing=self.shared.timing,
            on_tool_call=self.brain.record_tool_call,
        )
        self.active_responses[run.id] = run
        self.own(self._drive(run))
        return run

    async def _drive(self, run: ResponseRun) -> None:
        try:
            await run.run()
        except ConnectionClosed:
            return
        finally:
            self.active_responses.pop(run.id, None)
            if run.status == "cancelled":
                self.cancelled_responses.append(run.id)
        await self._after_response(run)

    async def _after_response(self, run: ResponseRun) -> None:
        if self.pending_auto_response and self.conversation_response() is None:
            self.pending_auto_response = False
            self.start_response(self.choose_turn({}), {})
            return
        if run.in_conversation and run.status == "completed":
            start_idle_timer(self, run)

    async def cancel_responses(self, runs: list[ResponseRun], reason: str) -> None:
        """Cancel `runs` and wait until each has sent its `response.done`."""
        for run in runs:
            run.cancel(reason)
        for run in runs:
            await run.finished.wait()

    async def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Wait until no in-conversation response is active."""
        async with asyncio.timeout(timeout):
            while (run := self.conversation_response()) is not None:
                await run.finished.wait()
                await asyncio.sleep(0)

    def cancel_idle_timer(self) -> None:
        """Stop a pending idle timeout (speech or a new response arrived)."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    # ---- fault injection -----------------------------------------------------------------------------

    async def drop(self, code: int = 1006) -> None:
        """End the connection abruptly: 1006 = TCP reset with no close frame, else a close with `code`."""
        if code == 1006:
            self.ws.transport.abort()
        else:
            await self.ws.close(code)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 5.0)

    async def close(self, code: int = 1001, reason: str = SESSION_CAP_REASON) -> None:
        """Close the connection the way the service does (default: the 60-minute cap)."""
        await self.ws.close(code, reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 5.0)

    async def start_tool_call(self, name: str, args: dict[str, object]) -> str:
        """Make the model call `name(args)` now, with no caller turn; returns the response id."""
        await self.wait_until_idle()
        return self.start_response(SimTurn(tool=name, arguments=dict(args)), {}).id

    async def speak(self, what: str | float) -> str:
        """Start a response now that says `what` (text) or streams `what` seconds of audio; returns its id."""
        await self.wait_until_idle()
        turn = SimTurn(say=what) if isinstance(what, str) else SimTurn(audio_seconds=float(what))
        return self.start_response(turn, {}).id

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def run(
        self, *, reject_with_error: tuple[str, str] | None, session_cap_seconds: float | None
    ) -> None:
        """Serve the connection until it closes."""
        started = time.monotonic()
        try:
            await self.send_event({"type": "session.created", "session": self.config})
            if reject_with_error is not None:
                error_code, error_message = reject_with_error
                await self.send_error(error_code, error_message, type=error_code)
                await self.ws.close(1000)
                return
            if session_cap_seconds is not None:
                self.own(self._close_at_cap(session_cap_seconds))
            async for message in self.ws:
                await handle_message(self, message)
        except ConnectionClosed:
            pass
        except ServerEventInvalid:
            raise
        except Exception as failure:
            self.report_bug(f"handler failed: {failure!r}", failure)
            raise
        finally:
            await self.shutdown_tasks()
            self.closed.set()
            log.info("sim session %d closed after %.1fs", self.index, time.monotonic() - started)

    async def _close_at_cap(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.ws.close(1001, SESSION_CAP_REASON)
