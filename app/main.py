"""The relay's ASGI app: Twilio webhook and media stream, health, and the call registry's lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from openai import AsyncOpenAI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.calls.caller_limits import CallerLimits
from app.calls.events import CallEventSink
from app.calls.filler_audio import prepare_filler_audio
from app.calls.relay import Relay
from app.functions.booking import booking_tools
from app.functions.business import BackendFactory, make_business_backend
from app.functions.registry import ToolRegistry
from app.metrics import RelayMetrics
from app.realtime.session import make_openai_client
from app.settings import Settings
from app.twilio import incoming, stream, transfer
from app.twilio.rest import AsyncTwilioRest


def create_app(
    settings: Settings,
    *,
    sink: CallEventSink,
    client: AsyncOpenAI | None = None,
    business: BackendFactory = make_business_backend,
) -> FastAPI:
    """Build the relay app. `sink` receives every call event (the outbox in production); `business` builds
    the business backend (the demo and dev commands pass the demo office's)."""
    settings.auth_token()  # refuse to start without the token that checks Twilio signatures

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = business(settings)
        tools = ToolRegistry(
            booking_tools(backend, timezone=settings.business_timezone),
            default_timeout=settings.tool_timeout_seconds,
        )
        openai_client = client or make_openai_client(settings)
        rest = AsyncTwilioRest.from_settings(settings) if settings.twilio_account_sid else None
        relay = Relay(settings, client=openai_client, tools=tools, sink=sink, rest=rest, metrics=metrics)
        metrics.watch(relay, sink)
        app.state.relay = relay
        app.state.caller_limits = CallerLimits(settings)
        await asyncio.to_thread(prepare_filler_audio)
        try:
            yield
        finally:
            await relay.shutdown()
            await app.state.caller_limits.aclose()
            await backend.aclose()
            if rest is not None:
                await rest.aclose()
            if client is None:
                await openai_client.close()

    metrics = RelayMetrics()
    app = FastAPI(title="voice-agent relay", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.include_router(incoming.router)
    app.include_router(stream.router)
    app.include_router(transfer.router)

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        relay: Relay = app.state.relay
        status = 503 if relay.draining or relay.at_capacity else 200
        body = {"draining": relay.draining, "at_capacity": relay.at_capacity, "live_calls": relay.live_calls}
        return JSONResponse(body, status_code=status)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
