"""A whole phone system on one machine: simulated Realtime server, the real relay, simulated callers.

Used by the no-keys demo, the end-to-end tests and the benchmarks. The relay runs under a real uvicorn on a
free loopback port, with the same app factory as production; only its upstreams point at simulators.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import uvicorn

from app.calls.caller_limits import CallerLimits
from app.calls.events import CallEventSink, MemorySink
from app.calls.relay import Relay
from app.functions.business import make_business_backend
from app.main import create_app
from app.metrics_server import MetricsServer, serve_metrics
from app.settings import Settings, load_settings
from app.sim.demo_business import create_demo_business_app, demo_backend
from app.sim.demo_profiles import DemoProfile
from app.sim.realtime_script import SimTurn
from app.sim.realtime_server import RealtimeSimulator
from app.sim.twilio_caller import SimulatedCaller
from app.sim.twilio_rest import SimulatedTwilioRest

PUBLIC_BASE_URL = "https://relay.example.test"


@dataclass
class LocalStack:
    """Handles to every part of a running local stack."""

    settings: Settings
    sim: RealtimeSimulator
    relay_url: str
    relay: Relay
    sink: CallEventSink
    server: uvicorn.Server
    rest: SimulatedTwilioRest | None = None
    metrics_url: str | None = None  # the relay's metrics listener, when `local_stack(metrics_port=...)`
    caller_limits: CallerLimits | None = None

    def caller(self, **kwargs: Any) -> SimulatedCaller:
        """A simulated caller dialling this relay, signing as Twilio would (and known to the REST sim)."""
        caller = SimulatedCaller(
            relay_url=self.relay_url,
            public_base_url=self.settings.public_base_url or self.relay_url,
            auth_token=self.settings.auth_token(),
            account_sid=self.settings.twilio_account_sid,
            **kwargs,
        )
        if self.rest is not None:
            self.rest.link_caller(caller)
        return caller


async def serve_in_background(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Server:
    """Start uvicorn on this event loop; returns once it listens (read the port from the server)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", ws_max_size=1024 * 1024
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="uvicorn")
    server.config.__dict__["_task"] = task
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited before it started")
        await asyncio.sleep(0.005)
    return server


def bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server has no socket")


async def stop_server(server: uvicorn.Server) -> None:
    server.should_exit = True
    task: asyncio.Task[None] = server.config.__dict__["_task"]
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def local_stack(
    *,
    script: Sequence[SimTurn] = (),
    sink: CallEventSink | None = None,
    tts: Callable[[str], np.ndarray] | None = None,
    first_audio_delay: float = 0.3,
    realtime_factor: float = 4.0,
    settings_overrides: dict[str, Any] | None = None,
    sim_options: dict[str, Any] | None = None,
    twilio_rest: bool = False,
    metrics_port: int | None = None,
    business: DemoProfile | None = None,
    model: RealtimeSimulator | None = None,
) -> AsyncIterator[LocalStack]:
    """Run the simulator (or `model`, e.g. the offline engine) and the relay until the block exits; with
    `metrics_port` (0: any free port) also serve the relay's metrics on 127.0.0.1 as `voice-agent serve`
    does.

    With `business`, that demo business's backend is served on its own loopback port and the relay is set up
    for it (`BUSINESS_API_BASE` and the profile's name, kind and time zone) exactly as for a real backend.
    """
    sim = model or RealtimeSimulator(
        script=script,
        first_audio_delay=first_audio_delay,
        realtime_factor=realtime_factor,
        tts=tts,
        **(sim_options or {}),
    )
    await sim.start()
    auth_token, account_sid = secrets.token_hex(16), "AC" + secrets.token_hex(16)
    rest = SimulatedTwilioRest(account_sid, auth_token) if twilio_rest else None
    if rest is not None:
        rest.start()
    backend = await serve_in_background(create_demo_business_app(profile=business)) if business else None
    try:
        overrides: dict[str, Any] = {
            "openai_api_key": "sk-sim",
            "openai_base_url": sim.base_url,
            "twilio_auth_token": auth_token,
            "twilio_account_sid": account_sid if rest is not None else None,
            "twilio_api_base_url": rest.base_url if rest is not None else "http://127.0.0.1:9",
            "public_base_url": PUBLIC_BASE_URL,
            "business_api_base": None,
            "redis_url": None,
            # Simulated callers all dial from one number: tests of the per-caller limits set their own.
            "max_calls_per_caller": 10_000,
            "max_calls_per_caller_per_hour": 1_000_000,
        }
        if business is not None and backend is not None:
            overrides.update(business.settings(), business_api_base=f"http://127.0.0.1:{bound_port(backend)}")
        overrides.update(settings_overrides or {})
        settings = load_settings(_env_file=None, **overrides)
        event_sink = sink if sink is not None else MemorySink()
        # The demo office answers unless a test points BUSINESS_API_BASE at a backend of its own.
        backend_factory = demo_backend if settings.business_api_base is None else make_business_backend
        app = create_app(settings, sink=event_sink, business=backend_factory)
        server = await serve_in_background(app)
        metrics: MetricsServer | None = None
        try:
            if metrics_port is not None:
                metrics = await asyncio.to_thread(
                    serve_metrics, app.state.metrics.registry, "127.0.0.1", metrics_port
                )
            relay: Relay = app.state.relay
            stack = LocalStack(
                settings=settings,
                sim=sim,
                relay_url=f"http://127.0.0.1:{bound_port(server)}",
                relay=relay,
                sink=event_sink,
                server=server,
                rest=rest,
                metrics_url=f"http://127.0.0.1:{metrics.port}/metrics" if metrics is not None else None,
                caller_limits=app.state.caller_limits,
            )
            yield stack
        finally:
            if metrics is not None:
                await asyncio.to_thread(metrics.close)
            await stop_server(server)
    finally:
        if backend is not None:
            await stop_server(backend)
        if rest is not None:
            rest.stop()
        await sim.stop()
