"""The Realtime server events a call acts on, dispatched by `type` (the GA names; beta names never match).

Audio deltas, transcripts and barge-in go back to the call; `response.*` events drive the response gate;
completed function calls go to the tool runner; `error` events are sorted into races (retried), fatal
refusals (no reconnect) and everything else (logged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.calls import tool_runner

if TYPE_CHECKING:
    from app.calls.call import Call

# Errors that mean the session can never work (bad key, no quota): the close that follows is not retried.
FATAL_ERROR_CODES = frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "billing_hard_limit_reached",
        "model_not_found",
        "unsupported_country_region_territory",
    }
)


async def on_model_event(call: Call, event: dict[str, Any]) -> None:
    """Dispatch one Realtime server event; unknown types are ignored."""
    kind = event["type"]
    if kind == "response.output_audio.delta":
        await call.on_audio_delta(event)
    elif kind == "response.output_audio_transcript.delta":
        if event.get("item_id") not in call.dropped_items:
            call.transcript.agent_text(str(event.get("item_id")), str(event.get("delta", "")))
    elif kind == "input_audio_buffer.speech_started":
        call.idle.caller_active(speaking=True)
        call.timings.caller_speech_started()
        await call.barge_in()
    elif kind == "input_audio_buffer.speech_stopped":
        call.idle.caller_active(speaking=False)
        call.transcript.caller_stopped()
        call.timings.caller_speech_stopped()
    elif kind == "response.created":
        call.gate.on_created(str(event["response"]["id"]))
        call.idle.agent_replying(call.gate.active_purpose)
    elif kind == "response.done":
        await _on_response_done(call, event["response"])
    elif kind == "response.output_item.done":
        await _on_output_item_done(call, event["item"], str(event.get("response_id")))
    elif kind == "response.output_audio.done":
        await call.flush_outbound(str(event.get("item_id")))
    elif kind == "response.output_audio_transcript.done":
        item_id, said = str(event.get("item_id")), str(event.get("transcript", ""))
        call.transcript.agent_text_done(item_id, said)
        call.control.notice.on_transcript(str(event.get("response_id")), item_id, said)
    elif kind == "conversation.item.input_audio_transcription.completed":
        add_transcription_usage(call.usage, event.get("usage"))
        call.transcript.caller_said(str(event.get("transcript", "")), call.caller_speech_started_at)
        call.control.screen_caller_words(str(event.get("transcript", "")))
    elif kind == "error":
        await _on_error(call, event.get("error") or {})
    elif kind == "session.created":
        call.session_id = str(event["session"].get("id"))


async def _on_error(call: Call, error: dict[str, Any]) -> None:
    code = error.get("code")
    if code == "conversation_already_has_active_response":
        await call.gate.on_race_error()
    elif code in FATAL_ERROR_CODES:
        call.fatal_model_error = str(code)
    elif code != "response_cancel_not_active":
        call.log.warning("model_error", code=code, type=error.get("type"))


def _add(total: dict[str, int], key: str, value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        total[key] = total.get(key, 0) + int(value)


def add_response_usage(total: dict[str, int], usage: Any) -> None:
    """Sum a `response.done` usage into the call's totals, kind by kind, so each is priced at its rate."""
    if not isinstance(usage, dict):
        return
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        _add(total, key, usage.get(key))
    details_in = usage.get("input_token_details") or {}
    details_out = usage.get("output_token_details") or {}
    cached = details_in.get("cached_tokens_details") or {}
    _add(total, "input_text_tokens", details_in.get("text_tokens"))
    _add(total, "input_audio_tokens", details_in.get("audio_tokens"))
    _add(total, "input_cached_text_tokens", cached.get("text_tokens"))
    _add(total, "input_cached_audio_tokens", cached.get("audio_tokens"))
    _add(total, "output_text_tokens", details_out.get("text_tokens"))
    _add(total, "output_audio_tokens", details_out.get("audio_tokens"))


def add_transcription_usage(total: dict[str, int], usage: Any) -> None:
    """Sum a caller transcription's usage (tokens, or a duration) into the call's totals."""
    if not isinstance(usage, dict):
        return
    if usage.get("type") == "duration":
        seconds = usage.get("seconds")
        if isinstance(seconds, int | float):
            _add(total, "transcription_ms", round(seconds * 1000))
        return
    _add(total, "transcription_input_tokens", usage.get("input_tokens"))
    _add(total, "transcription_output_tokens", usage.get("output_tokens"))


async def _on_response_done(call: Call, response: dict[str, Any]) -> None:
    add_response_usage(call.usage, response.get("usage"))
    call.control.notice.on_done(str(response.get("id")), str(response.get("status")))
    if response.get("status") == "failed":
        details = response.get("status_details") or {}
        call.log.warning("response_failed", error=(details.get("error") or {}).get("code"))
    await call.gate.on_done(str(response.get("id")))


async def _on_output_item_done(call: Call, item: dict[str, Any], response_id: str) -> None:
    item_id = str(item.get("id"))
    if item.get("type") == "function_call":
        # Only a completed call runs; one cut short by barge-in is skipped.
        if item.get("status") == "completed":
            spoke = response_id in call.responses_with_audio  # the reply said something first
            call_id, name = str(item["call_id"]), str(item["name"])
            tool_runner.dispatch(call, call_id, name, str(item.get("arguments")), spoke)
        return
    if item_id in call.dropped_items:
        return
    call.transcript.agent_generated(item_id)
    queued = call.has_queued_audio(item_id)
    if call.playback.last_mark_for(item_id) is None and not queued:
        call.transcript.agent_played(item_id)
