"""Running the model's function calls for a call.

Business tools run in their own task (never on the audio path) under the registry's timeout; their JSON
result goes back as `function_call_output` and, once every call of that turn is answered, one
`response.create` asks the model to speak it. If a tool is still working after about a second and the caller
hears nothing, a short out-of-band filler line plays. Call-control tools (`transfer_to_human`, `end_call`,
`take_message`) are handled by `CallControl`.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from app.calls.events import ToolInvocation
from app.calls.responses import ResponseRequest
from app.functions.call_control import CONTROL_TOOL_NAMES
from app.functions.registry import ToolContext

if TYPE_CHECKING:
    from app.calls.call import Call


def dispatch(call: Call, call_id: str, name: str, arguments: str, spoke: bool) -> None:
    """Start handling one completed function call; `spoke` says its reply already said something."""
    if name in CONTROL_TOOL_NAMES:
        call.tasks.spawn(
            call.control.on_tool(call_id, name, _loads(arguments), spoke=spoke), f"control:{name}"
        )
        return
    call.tool_calls_running += 1
    call.tasks.spawn(run_tool(call, call_id, name, arguments), f"tool:{name}")


def _loads(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def send_tool_output(call: Call, call_id: str, output: dict[str, Any], *, respond: bool) -> None:
    """Give the model a function's result and, when asked, let it speak about it."""
    item = {"type": "function_call_output", "call_id": call_id, "output": json.dumps(output, default=str)}
    await call.send_model_json({"type": "conversation.item.create", "item": item})
    if respond:
        await call.gate.request(ResponseRequest(supersedable=True, purpose="tool_result"))


async def run_tool(call: Call, call_id: str, name: str, arguments: str) -> None:
    filler = call.tasks.spawn(_filler_after(call, call.settings.tool_filler_after_seconds), "filler")
    context = ToolContext(call_sid=call.sid, caller_number=call.caller.from_number)
    try:
        outcome = await call.tools.invoke(name, arguments, context)
    finally:
        filler.cancel()
        call.tool_calls_running -= 1
    call.tool_seq += 1
    call.metrics.tool_finished(
        name, ok=outcome.ok, error_code=outcome.error_code, seconds=outcome.latency_ms / 1000
    )
    call.tool_log.append(_describe(name, outcome.arguments, outcome.ok))
    call.emit(
        ToolInvocation(
            call_sid=call.sid,
            seq=call.tool_seq,
            name=name,
            arguments=outcome.arguments,
            result=outcome.output,
            ok=outcome.ok,
            latency_ms=round(outcome.latency_ms, 1),
        )
    )
    call.idle.agent_working_done()
    await send_tool_output(call, call_id, outcome.output, respond=call.tool_calls_running == 0)


def _describe(name: str, arguments: dict[str, Any], ok: bool) -> str:
    """A few words about a tool call, for the transfer brief."""
    what = name.replace("_", " ")
    detail = " ".join(str(arguments[k]) for k in ("service", "start", "date") if arguments.get(k))
    return f"{what} {detail}".strip() + ("" if ok else " (failed)")


async def _filler_after(call: Call, delay: float) -> None:
    """If a tool is still working after `delay`, say so rather than leave the caller in silence."""
    await asyncio.sleep(delay)
    if call.tool_calls_running and not call.playback.is_playing and not call.gate.busy:
        request = {"conversation": "none", "instructions": call.prompts.filler_instructions}
        await call.gate.request(ResponseRequest(request, purpose="filler"))
