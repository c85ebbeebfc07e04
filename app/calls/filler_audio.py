"""The short line the caller hears while the model socket is being reconnected.

The model cannot speak while its socket is down, so this clip is made offline (espeak-ng) once per process,
in a thread at start-up, and kept as base64 mu-law ready to send. Until it is ready, nothing is played.
"""

from __future__ import annotations

import base64
import functools

FILLER_TEXT = "One moment, please."


@functools.cache
def _render() -> str:
    from app.sim.speech import synthesize_mulaw

    return base64.b64encode(synthesize_mulaw(FILLER_TEXT)).decode()


def prepare_filler_audio() -> None:
    """Render the clip (blocking, ~0.1 s); call from a thread at start-up."""
    _render()


def reconnect_filler_b64() -> str:
    """The clip as base64 mu-law, or "" if it has not been rendered yet."""
    return _render() if _render.cache_info().currsize else ""
