"""`voice-agent engine`: the offline engine behind the OpenAI Realtime (GA) protocol.

It is the simulator's protocol layer (app/sim/realtime_*: handshake, events validated against the openai
SDK's models, server VAD, streaming, cancel and truncate) with the listening brain (brain.py) in place of
the script, and espeak-ng in place of the synthetic voice. Any Bearer key is accepted. Point the relay at
it with `OPENAI_BASE_URL=http://HOST:PORT/v1`; both `pcmu` and `pcm16` work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.sim.engine.asr import recognizer_for
from app.sim.engine.brain import EngineBrain
from app.sim.engine.tts import speak
from app.sim.realtime_server import RealtimeSimulator

__all__ = ["DEMO_SERVICES", "engine_server", "run_engine", "warm_up"]

log = logging.getLogger(__name__)

DEMO_SERVICES = ("cleaning", "checkup", "whitening", "emergency")
FIRST_AUDIO_DELAY = 0.05  # recognition and synthesis take their own time; no need to add more
REALTIME_FACTOR = 2.0  # audio is streamed at twice real time, about the service's generation pace


def engine_server(*, host: str = "127.0.0.1", port: int = 0) -> RealtimeSimulator:
    """An engine ready to `start()` (port 0 picks a free one)."""
    return RealtimeSimulator(
        new_brain=EngineBrain,
        tts=speak,
        any_api_key=True,
        host=host,
        port=port,
        first_audio_delay=FIRST_AUDIO_DELAY,
        realtime_factor=REALTIME_FACTOR,
    )


async def warm_up(services: tuple[str, ...] = DEMO_SERVICES) -> None:
    """Build the recogniser and the voice before the first call (a second or two), off the event loop."""
    await asyncio.to_thread(recognizer_for, services)
    await asyncio.to_thread(speak, "Hello.")


async def _serve(host: str, port: int) -> None:
    await warm_up()
    async with engine_server(host=host, port=port) as engine:
        print(f"Offline Realtime engine at {engine.websocket_base_url}/realtime", flush=True)
        print(f"Point the relay at it: OPENAI_BASE_URL={engine.base_url}", flush=True)
        await asyncio.Future()


def run_engine(host: str, port: int) -> int:
    """Serve until interrupted; returns the exit code."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port))
    return 0
