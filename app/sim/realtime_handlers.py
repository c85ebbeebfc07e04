"""What the simulated Realtime server does with each client event (A3); input audio lives in realtime_turns.

Every client event is first validated strictly against the SDK's models; an invalid one is answered with an
`error` (code `invalid_event`) and recorded in `validation_errors`, which the relay's tests keep empty.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from app.sim.realtime_conversation import ItemNotFound, SimItem
from app.sim.realtime_session_config import SessionUpdateRejected, merge_session_update, new_id
from app.sim.realtime_turns import append_audio, clear_audio, commit_audio
from app.sim.realtime_validation import client_event_problems

if TYPE_CHECKING:
    from app.sim.realtime_session import SimSession

__all__ = ["handle_message"]

Handler = Callable[["SimSession", dict[str, Any]], Awaitable[None]]


async def handle_message(session: SimSession, message: str | bytes) -> None:
    """Validate one client frame, record it, and act on it."""
    if isinstance(message, bytes):
        await session.reject_client_event(
            "<binary>", ["Binary frames are not supported; send JSON text frames."]
        )
        return
    try:
        event = json.loads(message)
    except json.JSONDecodeError:
        await session.reject_client_event(
            "<unparsable>", ["We could not parse the JSON body of your request."]
        )
        return
    if isinstance(event, dict):
        await session.record_received(event)
    problems = client_event_problems(event)
    if problems:
        event_type = event.get("type") if isinstance(event, dict) else None
        session_update = event.get("session") if isinstance(event, dict) else None
        if (
            event_type == "session.update"
            and isinstance(session_update, dict)
            and "type" not in session_update
        ):
            await session.reject_client_event(
                event_type,
                ["Missing required parameter: 'session.type'."],
                "missing_required_parameter",
            )
        else:
            await session.reject_client_event(event_type, problems)
        return
    await _HANDLERS[event["type"]](session, event)


# ---- session -----------------------------------------------------------------------------------------


async def _session_update(session: SimSession, event: dict[str, Any]) -> None:
    try:
        merged = merge_session_update(session.config, event["session"], voice_locked=session.voice_locked)
    except SessionUpdateRejected as rejected:
        await session.send_error(rejected.code, rejected.message, param=rejected.param)
        return
    session.config = merged
    session.input.configure(merged["audio"]["input"])
    session.brain.configure(merged)
    await session.send_event({"type": "session.updated", "session": merged})


# ---- conversation items ------------------------------------------------------------------------------


async def _item_create(session: SimSession, event: dict[str, Any]) -> None:
    payload = dict(event["item"])
    if payload.get("role") == "assistant" and any(
        part.get("type") == "output_audio" for part in payload.get("content", [])
    ):
        await session.send_error(
            "invalid_value", "Assistant audio messages cannot be created by the client.", param="item.content"
        )
        return
    payload.setdefault("id", new_id("item"))
    payload.setdefault("object", "realtime.item")
    payload["status"] = "completed"
    input_audio_ms = 0.0
    for part in payload.get("content", []):
        if part.get("type") == "input_audio" and part.get("audio"):
            input_audio_ms += len(base64.b64decode(part.pop("audio"))) / session.input.format.bytes_per_ms
    item = SimItem(payload, input_audio_ms=input_audio_ms)
    try:
        previous_item_id = session.conversation.add(item, event.get("previous_item_id"))
    except ItemNotFound:
        await session.send_error(
            "invalid_value",
            f"Invalid 'previous_item_id': no item with id '{event.get('previous_item_id')}'.",
            param="previous_item_id",
        )
        return
    await session.send_event(
        {"type": "conversation.item.added", "previous_item_id": previous_item_id, "item": item.public()}
    )
    await session.send_event(
        {"type": "conversation.item.done", "previous_item_id": previous_item_id, "item": item.public()}
    )
    if payload.get("type") == "function_call_output":
        session.brain.record_tool_output(str(payload["call_id"]), str(payload["output"]))
    elif payload.get("type") == "message" and payload.get("role") == "user":
        session.caller_turns += 1
        text = " ".join(str(part.get("text") or "") for part in payload.get("content", []))
        session.brain.on_caller_text(text.strip())


async def _item_truncate(session: SimSession, event: dict[str, Any]) -> None:
    item_id = event["item_id"]
    audio_end_ms = event["audio_end_ms"]
    item = session.conversation.get(item_id)
    if item is None:
        await session.send_error(
            "item_truncate_invalid_item_id",
            f"Error truncating item: the item with id '{item_id}' does not exist.",
            param="item_id",
        )
        return
    if not item.has_output_audio or event["content_index"] != 0 or item.output_format is None:
        await session.send_error(
            "unsupported_content_type", "Only model output audio messages can be truncated"
        )
        return
    available_ms = item.output_audio_ms
    if audio_end_ms > available_ms:
        await session.send_error(
            "invalid_value",
            f"Audio content of {math.floor(available_ms)}ms is already shorter than {audio_end_ms}ms",
            param="audio_end_ms",
        )
        return
    del item.output_audio[audio_end_ms * item.output_format.bytes_per_ms :]
    # The service drops the transcript so the model's context holds no words the caller did not hear.
    for part in item.payload.get("content", []):
        part["transcript"] = None
    session.truncations.append((item_id, audio_end_ms))
    await session.send_event(
        {
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": audio_end_ms,
        }
    )


async def _item_delete(session: SimSession, event: dict[str, Any]) -> None:
    item_id = event["item_id"]
    if not session.conversation.delete(item_id):
        await session.send_error(
            "item_delete_invalid_item_id",
            f"Error deleting item: the item with id '{item_id}' does not exist.",
            param="item_id",
        )
        return
    await session.send_event({"type": "conversation.item.deleted", "item_id": item_id})


async def _item_retrieve(session: SimSession, event: dict[str, Any]) -> None:
    item = session.conversation.get(event["item_id"])
    if item is None:
        await session.send_error(
            "item_retrieve_invalid_item_id",
            f"Error retrieving item: the item with id '{event['item_id']}' does not exist.",
            param="item_id",
        )
        return
    public = item.public()
    if item.has_output_audio:
        for part in public.get("content", []):
            if part.get("type") == "output_audio":
                part["audio"] = base64.b64encode(bytes(item.output_audio)).decode()
    await session.send_event({"type": "conversation.item.retrieved", "item": public})


# ---- responses ---------------------------------------------------------------------------------------


async def _response_create(session: SimSession, event: dict[str, Any]) -> None:
    params: dict[str, Any] = event.get("response") or {}
    active = session.conversation_response()
    if params.get("conversation") != "none" and active is not None:
        message = (
            f"Conversation already has an active response in progress: {active.id}. "
            "Wait until the response is finished before creating a new one."
        )
        session.shared.race_errors.append(f"session {session.index}: {message}")
        await session.send_error("conversation_already_has_active_response", message)
        return
    session.start_response(session.choose_turn(params), params)


async def _response_cancel(session: SimSession, event: dict[str, Any]) -> None:
    response_id = event.get("response_id")
    runs = [run for run in session.active_responses.values() if response_id in (None, run.id)]
    if not runs:
        await session.send_error(
            "response_cancel_not_active", "Cancellation failed: no active response found"
        )
        return
    await session.cancel_responses(runs, "client_cancelled")


async def _output_audio_buffer_clear(session: SimSession, event: dict[str, Any]) -> None:
    await session.reject_client_event(
        event["type"],
        ["output_audio_buffer.clear is only supported for WebRTC and SIP sessions, not WebSocket ones."],
    )


_HANDLERS: dict[str, Handler] = {
    "session.update": _session_update,
    "input_audio_buffer.append": append_audio,
    "input_audio_buffer.commit": commit_audio,
    "input_audio_buffer.clear": clear_audio,
    "conversation.item.create": _item_create,
    "conversation.item.truncate": _item_truncate,
    "conversation.item.delete": _item_delete,
    "conversation.item.retrieve": _item_retrieve,
    "response.create": _response_create,
    "response.cancel": _response_cancel,
    "output_audio_buffer.clear": _output_audio_buffer_clear,
}
