"""The side-by-side peer: a Twilio <-> OpenAI Realtime agent built the way Pipecat's docs build one.

Run as its own process by the load bench: `python -m bench._pipecat_peer PORT MODEL_WS_URL`. It uses only
Pipecat's public API (pipecat-ai from PyPI, the `bench` extra): `TwilioFrameSerializer`,
`FastAPIWebsocketTransport`, `OpenAIRealtimeLLMService` (GA protocol) with its context aggregators and one
registered tool, served by uvicorn. Per call: the stream's `connected` and `start` are read first (as
Pipecat's own runner does), then a pipeline transport.input -> user aggregator -> realtime LLM ->
transport.output -> assistant aggregator runs until the caller hangs up; the greeting is asked for as soon
as the client is connected. Pipeline audio runs at 8 kHz, Twilio's rate, as Pipecat's Twilio examples do.

Nothing of Pipecat is copied here; if its API moves, this file is the one to adapt.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import PlainTextResponse
from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

INSTRUCTIONS = "You are the receptionist of a dental office. Be brief."
LOOKUP_HOURS = FunctionSchema(
    name="lookup_hours",
    description="Opening hours for a date.",
    properties={"date": {"type": "string", "description": "today, tomorrow or YYYY-MM-DD"}},
    required=["date"],
)


async def lookup_hours(params: FunctionCallParams) -> None:
    """The tool answers at once, as the relay's built-in demo business does."""
    await params.result_callback({"date": params.arguments.get("date"), "open": "09:00", "close": "17:00"})


async def _read_start(websocket: WebSocket) -> dict[str, Any]:
    """Twilio sends `connected` then `start`; the serializer needs the start's stream and call sids."""
    while True:
        message = json.loads(await websocket.receive_text())
        if message.get("event") == "start":
            start: dict[str, Any] = message["start"]
            return start


def build_app(model_url: str) -> FastAPI:
    """One FastAPI app: `/ws` takes Twilio media streams, `/healthz` says it is up."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.websocket("/ws")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        start = await _read_start(websocket)
        serializer = TwilioFrameSerializer(
            stream_sid=start["streamSid"],
            call_sid=start["callSid"],
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),  # no REST API here
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=serializer,
                allowed_origins=[],
            ),
        )
        llm = OpenAIRealtimeLLMService(
            api_key="sk-sim",
            base_url=model_url,
            settings=OpenAIRealtimeLLMService.Settings(
                model="gpt-realtime-mini",
                system_instruction=INSTRUCTIONS,
                session_properties=events.SessionProperties(
                    audio=events.AudioConfiguration(
                        input=events.AudioInput(
                            turn_detection=events.TurnDetection(silence_duration_ms=500),
                        ),
                    ),
                ),
            ),
        )
        llm.register_function("lookup_hours", lookup_hours)
        context = LLMContext(
            [{"role": "user", "content": "Greet the caller."}], tools=ToolsSchema([LOOKUP_HOURS])
        )
        aggregators = LLMContextAggregatorPair(context)
        pipeline = Pipeline(
            [transport.input(), aggregators.user(), llm, transport.output(), aggregators.assistant()]
        )
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
            idle_timeout_secs=None,
            enable_rtvi=False,
        )

        async def on_connected(transport: Any, client: Any) -> None:
            await worker.queue_frames([LLMRunFrame()])

        async def on_disconnected(transport: Any, client: Any) -> None:
            await worker.cancel()

        transport.add_event_handler("on_client_connected", on_connected)
        transport.add_event_handler("on_client_disconnected", on_disconnected)

        await WorkerRunner(handle_sigint=False).run(worker)

    return app


def main(argv: list[str]) -> None:
    """`PORT MODEL_WS_URL`: serve on 127.0.0.1:PORT with the model at MODEL_WS_URL (…/v1/realtime)."""
    port, model_url = int(argv[0]), argv[1]
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    uvicorn.run(build_app(model_url), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
