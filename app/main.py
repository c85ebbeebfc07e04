"""The relay's ASGI app: Twilio webhook and media stream, health, and the call registry's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from openai import AsyncOpenAI

from app.access_log import AccessLog
from app.backoffice import mount_backoffice
from app.calls.caller_limits import CallerLimits
from app.calls.events import CallEventSink
from app.calls.filler_audio import prepare_filler_audio
from app.calls.history import history_store_for
from app.calls.relay import Relay
from app.functions.booking import booking_tools
from app.functions.business import BackendFactory, make_business_backend
from app.functions.registry import ToolRegistry
from app.functions.services import ServiceCatalog
from app.logs import get_logger
from app.metrics import RelayMetrics
from app.realtime.session import make_openai_client
from app.settings import Settings
from app.twilio import incoming, number_hooks, status, stream, transfer
from app.twilio.request_guard import RequestGuard
from app.twilio.rest import AsyncTwilioRest

log = get_logger(__name__)


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
    if not settings.transcription_model:
        log.warning(
            "emergency_screen_off",
            why="TRANSCRIPTION_MODEL is empty: caller words are not transcribed, so the relay cannot screen "
            "them for emergencies (the model's own judgement still applies)",
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = business(settings)
        catalog = ServiceCatalog(backend, refresh_seconds=settings.services_refresh_seconds)
        await catalog.refresh()  # before the first call; a failure is logged and the refresh loop retries
        tools = ToolRegistry(
            booking_tools(backend, catalog, timezone=settings.business_timezone),
            default_timeout=settings.tool_timeout_seconds,
        )
        openai_client = client or make_openai_client(settings)
        rest = AsyncTwilioRest.from_settings(settings) if settings.twilio_account_sid else None
        history = history_store_for(settings.redis_url)
        relay = Relay(
            settings,
            client=openai_client,
            tools=tools,
            sink=sink,
            rest=rest,
            metrics=metrics,
            history=history,
        )
        metrics.watch(relay, sink)
        app.state.relay = relay
        app.state.caller_limits = CallerLimits(settings)
        await asyncio.to_thread(prepare_filler_audio)
        refresher = asyncio.create_task(catalog.keep_fresh(), name="services-refresh")
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await relay.shutdown()
            await app.state.caller_limits.aclose()
            await backend.aclose()
            if rest is not None:
                await rest.aclose()
            if client is None:
                await openai_client.close()
            if backoffice is not None:
                await asyncio.to_thread(backoffice.store.close)

    metrics = RelayMetrics()
    # No public schema: the back office API's own lives behind its token (/api/openapi.json).
    app = FastAPI(
        title="voice-agent relay", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_webhook_body_bytes,
        read_timeout_seconds=settings.http_read_timeout_seconds,
    )
    app.add_middleware(AccessLog)  # outermost: refusals are logged too
    app.state.settings = settings
    app.state.metrics = metrics  # served on METRICS_PORT by `voice-agent serve`, never on this app
    app.include_router(incoming.router)
    app.include_router(stream.router)
    app.include_router(transfer.router)
    app.include_router(status.router)
    app.include_router(number_hooks.router)
    backoffice = mount_backoffice(app, settings)  # /backoffice and /api, only with BACKOFFICE_TOKEN

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        relay: Relay = app.state.relay
        status = 503 if relay.draining or relay.at_capacity else 200
        body = {"draining": relay.draining, "at_capacity": relay.at_capacity, "live_calls": relay.live_calls}
        return JSONResponse(body, status_code=status)

    return app
