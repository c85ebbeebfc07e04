"""The input side of the simulated Realtime server: appended audio, server VAD turns, commits, idle timeout.

A VAD turn goes speech_started (cancelling the active response when interrupt_response is true) ->
speech_stopped -> input_audio_buffer.committed -> user conversation.item.added/done -> the input
transcription (when configured, with what the brain heard) -> a response (when create_response is true;
if one is still running it follows that one).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from app.sim.realtime_conversation import SimItem, text_tokens
from app.sim.realtime_response import ResponseRun
from app.sim.realtime_session_config import new_id
from app.sim.realtime_vad import SpeechStarted, SpeechStopped

if TYPE_CHECKING:
    from app.sim.realtime_session import SimSession

__all__ = ["append_audio", "clear_audio", "commit_audio", "commit_user_audio", "start_idle_timer"]

MIN_COMMIT_MS = 100


def _turn_detection(session: SimSession) -> dict[str, Any] | None:
    turn_detection: dict[str, Any] | None = session.config["audio"]["input"].get("turn_detection")
    return turn_detection


async def append_audio(session: SimSession, event: dict[str, Any]) -> None:
    try:
        data = base64.b64decode(event["audio"], validate=True)
    except (binascii.Error, ValueError):
        await session.reject_client_event(
            event["type"], ["Invalid 'audio': expected base64-encoded audio bytes."]
        )
        return
    for transition in session.input.append(data):
        if isinstance(transition, SpeechStarted):
            await _speech_started(session, transition)
        else:
            await _speech_stopped(session, transition)


async def _speech_started(session: SimSession, started: SpeechStarted) -> None:
    session.cancel_idle_timer()
    session.pending_user_item_id = new_id("item")
    await session.send_event(
        {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": started.audio_start_ms,
            "item_id": session.pending_user_item_id,
        }
    )
    turn_detection = _turn_detection(session) or {}
    if turn_detection.get("interrupt_response", True) and session.active_responses:
        await session.cancel_responses(list(session.active_responses.values()), "turn_detected")


async def _speech_stopped(session: SimSession, stopped: SpeechStopped) -> None:
    item_id = session.pending_user_item_id or new_id("item")
    session.pending_user_item_id = None
    await session.send_event(
        {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": stopped.audio_end_ms,
            "item_id": item_id,
        }
    )
    _, audio = session.input.take_audio(since_ms=stopped.audio_start_ms)
    await commit_user_audio(session, item_id, stopped.audio_end_ms - stopped.audio_start_ms, audio)
    if (_turn_detection(session) or {}).get("create_response", True):
        await _auto_response(session)


async def _auto_response(session: SimSession) -> None:
    """VAD asks for a response; if one is still running (interrupt_response false) it follows that one."""
    if session.conversation_response() is not None:
        session.pending_auto_response = True
        return
    session.start_response(session.choose_turn({}), {})


async def commit_user_audio(
    session: SimSession, item_id: str, audio_ms: float, audio: bytes = b"", *, transcribe: bool = True
) -> SimItem:
    """Turn committed input audio into a user item: committed, item added/done, then the transcription.

    The brain hears the audio; its transcript is sent at once, or when its recogniser is done.
    """
    item = SimItem(
        {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        },
        input_audio_ms=audio_ms,
    )
    previous_item_id = session.conversation.add(item)
    await session.send_event(
        {"type": "input_audio_buffer.committed", "previous_item_id": previous_item_id, "item_id": item_id}
    )
    await session.send_event(
        {"type": "conversation.item.added", "previous_item_id": previous_item_id, "item": item.public()}
    )
    await session.send_event(
        {"type": "conversation.item.done", "previous_item_id": previous_item_id, "item": item.public()}
    )
    session.caller_turns += 1
    if not transcribe:
        return item
    heard = session.brain.hear(audio, session.input.format)
    if heard is None or not session.config["audio"]["input"].get("transcription"):
        return item
    if isinstance(heard, str):
        await _send_transcription(session, item, audio_ms, heard)
    else:
        session.own(_transcribe_later(session, item, audio_ms, heard))
    return item


async def _transcribe_later(
    session: SimSession, item: SimItem, audio_ms: float, heard: Callable[[], Awaitable[str]]
) -> None:
    await _send_transcription(session, item, audio_ms, await heard())


async def _send_transcription(session: SimSession, item: SimItem, audio_ms: float, transcript: str) -> None:
    item_id = item.id
    item.payload["content"][0]["transcript"] = transcript
    audio_tokens = math.ceil(audio_ms / 100)
    await session.send_event(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": {
                "type": "tokens",
                "input_tokens": audio_tokens,
                "output_tokens": text_tokens(transcript),
                "total_tokens": audio_tokens + text_tokens(transcript),
                "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
            },
        }
    )


async def commit_audio(session: SimSession, event: dict[str, Any]) -> None:
    if session.input.buffered_ms < MIN_COMMIT_MS:
        await session.send_error(
            "input_audio_buffer_commit_empty",
            "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
            f"but buffer only has {session.input.buffered_ms:.2f}ms of audio.",
        )
        return
    item_id = session.pending_user_item_id or new_id("item")
    session.pending_user_item_id = None
    await commit_user_audio(session, item_id, *session.input.take_audio())


async def clear_audio(session: SimSession, event: dict[str, Any]) -> None:
    session.input.clear()
    session.pending_user_item_id = None
    await session.send_event({"type": "input_audio_buffer.cleared"})


def start_idle_timer(session: SimSession, run: ResponseRun) -> None:
    """server_vad idle_timeout_ms: counts from response.done plus the estimated playback still to come."""
    turn_detection = _turn_detection(session) or {}
    idle_timeout_ms = turn_detection.get("idle_timeout_ms")
    if turn_detection.get("type") != "server_vad" or not idle_timeout_ms or session.input.speaking:
        return
    playback_left = 0.0
    if run.first_audio_at is not None:
        playback_left = max(0.0, run.audio_ms / 1000 - (time.monotonic() - run.first_audio_at))
    session.cancel_idle_timer()
    session.idle_timer = session.own(_idle_timeout(session, playback_left + idle_timeout_ms / 1000))


async def _idle_timeout(session: SimSession, delay: float) -> None:
    start_ms = int(session.input.clock_ms)
    await asyncio.sleep(delay)
    session.idle_timer = None
    if session.input.speaking or session.active_responses:
        return
    item_id = new_id("item")
    end_ms = int(session.input.clock_ms)
    await session.send_event(
        {
            "type": "input_audio_buffer.timeout_triggered",
            "audio_start_ms": start_ms,
            "audio_end_ms": end_ms,
            "item_id": item_id,
        }
    )
    session.input.take()
    await commit_user_audio(session, item_id, max(0, end_ms - start_ms), transcribe=False)
    session.start_response(session.brain.idle_turn(), {})
