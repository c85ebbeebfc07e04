"""A simulated OpenAI Realtime (GA) server for tests, benchmarks and the no-keys demo.

Speaks the GA WebSocket protocol at ws://HOST:PORT/v1/realtime?model=... with Bearer auth and no
subprotocol, so the openai SDK connects to it with
`AsyncOpenAI(api_key=..., base_url=sim.base_url).realtime.connect(model=...)`. Every event either way is
validated against the SDK's own models (see realtime_validation). What the model says comes from a script
(see realtime_script); audio comes from an injectable tts.

Run standalone: `python -m app.sim.realtime_server --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from app.sim.realtime_audio import synthetic_speech
from app.sim.realtime_brain import Brain
from app.sim.realtime_response import ResponseTiming
from app.sim.realtime_script import SimScript, SimTurn, ToolCallRecord, ToolOutputRecord
from app.sim.realtime_session import SessionShared, SimSession

__all__ = ["RealtimeSimulator", "SimSession", "SimTurn"]

log = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"
MODELS_PATH = "/v1/models"  # a plain GET, answered on the same port (what `voice-agent doctor` asks first)
MODELS = ("gpt-realtime", "gpt-realtime-mini", "gpt-4o-mini", "gpt-4o-mini-transcribe")
MAX_EVENT_BYTES = 16 * 1024 * 1024  # the service accepts up to 15 MiB of audio per append


def _masked(key: str) -> str:
    return f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"


class RealtimeSimulator:
    """The simulated Realtime service; one instance serves any number of sessions.

    By default every session follows one shared script; `new_brain` gives each session its own brain
    instead (the offline engine's listening one).
    """

    def __init__(
        self,
        *,
        script: Sequence[SimTurn] = (),
        greeting: str = "Thanks for calling. How can I help?",
        filler: str = "One moment.",
        fallback_reply: str = "Is there anything else?",
        first_audio_delay: float = 0.3,
        delta_ms: int = 100,
        realtime_factor: float = 4.0,
        tts: Callable[[str], npt.NDArray[np.int16]] | None = None,
        api_key: str = "sk-sim",
        host: str = "127.0.0.1",
        port: int = 0,
        fail_auth: bool = False,
        reject_with_error: tuple[str, str] | None = None,
        session_cap_seconds: float | None = None,
        idle_reply: str = "Are you still there?",
        new_brain: Callable[[], Brain] | None = None,
        any_api_key: bool = False,
    ) -> None:
        self.script = SimScript(
            script, greeting=greeting, filler=filler, fallback_reply=fallback_reply, idle_reply=idle_reply
        )
        self.timing = ResponseTiming(first_audio_delay, delta_ms, realtime_factor)
        self.tts = tts or synthetic_speech
        self.api_key = api_key
        self.any_api_key = any_api_key  # the offline engine takes whatever key the relay was given
        self.host = host
        self.port = port
        # Knobs tests may flip between connections (e.g. fail the reconnect after a drop).
        self.fail_auth = fail_auth
        self.reject_with_error = reject_with_error
        self.session_cap_seconds = session_cap_seconds
        self.models: list[str] = list(MODELS)  # what GET /v1/models lists for the key
        self.sessions: list[SimSession] = []
        self.validation_errors: list[str] = []
        self.race_errors: list[str] = []
        self.rejected_handshakes: list[int] = []  # HTTP statuses of refused upgrades
        self._shared = SessionShared(
            new_brain=new_brain or (lambda: self.script),
            timing=self.timing,
            tts=self.tts,
            validation_errors=self.validation_errors,
            race_errors=self.race_errors,
        )
        self._server: Server | None = None
        self._sessions_changed = asyncio.Condition()

    # ---- addresses -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """REST-style base URL for `AsyncOpenAI(base_url=...)` (the SDK swaps http for ws)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def websocket_base_url(self) -> str:
        """For `AsyncOpenAI(websocket_base_url=...)`."""
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every function call the simulated model made, across sessions."""
        return self.script.tool_calls

    @property
    def tool_outputs(self) -> list[ToolOutputRecord]:
        """Every function_call_output the client created, across sessions."""
        return self.script.tool_outputs

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; with port=0 the chosen port is in `.port` afterwards."""
        self._server = await serve(
            self._serve_connection,
            self.host,
            self.port,
            process_request=self._check_upgrade,
            compression=None,
            max_size=MAX_EVENT_BYTES,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("realtime simulator listening on %s", self.websocket_base_url)

    async def stop(self) -> None:
        """Close every session (1001, going away) and stop listening."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> RealtimeSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def wait_for_session(self, index: int = 0, timeout: float = 5.0) -> SimSession:
        """The `index`-th session to connect (0 = first), waiting for it if needed."""
        try:
            async with asyncio.timeout(timeout), self._sessions_changed:
                await self._sessions_changed.wait_for(lambda: len(self.sessions) > index)
        except TimeoutError:
            raise TimeoutError(
                f"no session #{index} within {timeout}s ({len(self.sessions)} so far)"
            ) from None
        return self.sessions[index]

    # ---- the handshake and the connection ------------------------------------------------------------

    def _reject(self, connection: ServerConnection, status: HTTPStatus, error: dict[str, Any]) -> Response:
        response = connection.respond(status, json.dumps({"error": error}))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        self.rejected_handshakes.append(int(status))
        return response

    def _json(self, connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
        response = connection.respond(status, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    def _list_models(self, connection: ServerConnection, request: Request) -> Response:
        if self.fail_auth or request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            error = {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            return self._json(connection, HTTPStatus.UNAUTHORIZED, {"error": {**error, "param": None}})
        listed = [
            {"id": model, "object": "model", "created": 0, "owned_by": "system"} for model in self.models
        ]
        return self._json(connection, HTTPStatus.OK, {"object": "list", "data": listed})

    def _check_upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path.rstrip("/") == MODELS_PATH:
            return self._list_models(connection, request)
        if url.path.rstrip("/") != REALTIME_PATH:
            return self._reject(
                connection,
                HTTPStatus.NOT_FOUND,
                {
                    "message": f"Invalid URL (GET {url.path})",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
            )
        authorization = request.headers.get("Authorization", "")
        presented = authorization.removeprefix("Bearer ").strip()
        key_ok = bool(presented) if self.any_api_key else authorization == f"Bearer {self.api_key}"
        if self.fail_auth or not key_ok:
            return self._reject(
                connection,
                HTTPStatus.UNAUTHORIZED,
                {
                    "message": f"Incorrect API key provided: {_masked(presented)}. "
                    "You can find your API key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                },
            )
        if not parse_qs(url.query).get("model"):
            return self._reject(
                connection,
                HTTPStatus.BAD_REQUEST,
                {
                    "message": "Missing required parameter: 'model'.",
                    "type": "invalid_request_error",
                    "param": "model",
                    "code": "missing_required_parameter",
                },
            )
        return None

    async def _serve_connection(self, ws: ServerConnection) -> None:
        model = parse_qs(urlsplit(ws.request.path if ws.request else "").query)["model"][0]
        async with self._sessions_changed:
            session = SimSession(self._shared, ws, model, len(self.sessions))
            self.sessions.append(session)
            self._sessions_changed.notify_all()
        log.info("sim session %d connected (model %s)", session.index, model)
        await session.run(
            reject_with_error=self.reject_with_error, session_cap_seconds=self.session_cap_seconds
        )


async def _serve_forever(host: str, port: int, api_key: str) -> None:
    async with RealtimeSimulator(host=host, port=port, api_key=api_key) as simulator:
        print(
            f"Realtime simulator at {simulator.websocket_base_url}/realtime (base_url {simulator.base_url})",
            flush=True,
        )
        await asyncio.Future()


def main(argv: Sequence[str] | None = None) -> None:
    """Run a simulator until interrupted (for manual testing)."""
    parser = argparse.ArgumentParser(description="Simulated OpenAI Realtime (GA) server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", default="sk-sim")
    parser.add_argument("--verbose", action="store_true", help="log every event type sent and received")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.verbose:
        logging.getLogger("app.sim").setLevel(logging.DEBUG)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.host, args.port, args.api_key))


if __name__ == "__main__":
    main()
