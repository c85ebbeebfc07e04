"""The engine's voice: espeak-ng (offline, in-process) at the 24 kHz the protocol layer encodes from."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from app.sim.realtime_audio import OUTPUT_RATE
from app.sim.speech import synthesize

__all__ = ["AGENT_VOICE", "prepare", "speak"]

AGENT_VOICE = "en-us+m3"  # a different voice from the simulated callers', so the WAV is easy to follow


def speak(text: str) -> npt.NDArray[np.int16]:
    """The agent saying `text`, int16 at 24 kHz (cached per line, so a prepared line is instant)."""
    return np.asarray(synthesize(text, rate=OUTPUT_RATE, voice=AGENT_VOICE))


async def prepare(text: str) -> None:
    """Synthesise `text` off the event loop, so the response's own call finds it ready."""
    if text:
        await asyncio.to_thread(speak, text)
