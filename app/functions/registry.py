"""The tools the model may call: schemas for the session, and invocation with a timeout.

A tool is a plain async function with a JSON schema. It runs in its own task, off the audio loop, under a
timeout (default `TOOL_TIMEOUT_SECONDS`, 2 s). Whatever happens, the model gets a small JSON object back: the
result, or `{"error": {"code", "message"}}` it can voice ("the booking system is slow, let me take a
message"). Nothing a tool raises escapes into the call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.logs import get_logger

log = get_logger(__name__)


class ToolError(Exception):
    """An expected failure a tool reports to the model, e.g. `slot_taken` or `backend_unavailable`."""

    def __init__(self, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def as_output(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.detail}}


@dataclass(slots=True)
class ToolContext:
    """What a tool may know about the call it serves."""

    call_sid: str
    caller_number: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[dict[str, Any], ToolContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    # A schema, or a function that builds the current one (e.g. from the business's list of services).
    parameters: dict[str, Any] | Callable[[], dict[str, Any]]
    handler: Handler
    timeout_seconds: float | None = None

    def current_parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments as it stands now."""
        return self.parameters() if callable(self.parameters) else self.parameters

    def schema(self) -> dict[str, Any]:
        """The Realtime session's function tool entry."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.current_parameters(),
        }


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    name: str
    arguments: dict[str, Any]
    output: dict[str, Any]
    ok: bool
    latency_ms: float

    @property
    def error_code(self) -> str | None:
        """The structured error's code (`timeout`, `slot_taken`, ...), or None when the tool succeeded."""
        error = self.output.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        return str(code) if code is not None else None

    def output_json(self) -> str:
        return json.dumps(self.output, separators=(",", ":"), default=str)


class ToolRegistry:
    """The set of tools one relay offers, by name."""

    def __init__(self, tools: Iterable[Tool] = (), *, default_timeout: float = 2.0) -> None:
        self._tools: dict[str, Tool] = {}
        self.default_timeout = default_timeout
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} registered twice")
        self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    async def invoke(self, name: str, arguments_json: str, context: ToolContext) -> ToolOutcome:
        """Run a tool by name with the model's JSON arguments; always returns an outcome."""
        started = time.perf_counter()
        arguments: dict[str, Any] = {}
        try:
            tool = self._tools.get(name)
            if tool is None:
                raise ToolError("unknown_tool", f"There is no tool named {name}.")
            arguments = _parse_arguments(arguments_json, tool)
            timeout = tool.timeout_seconds or self.default_timeout
            try:
                output = await asyncio.wait_for(tool.handler(arguments, context), timeout)
            except TimeoutError:
                raise ToolError("timeout", f"The system did not answer within {timeout:g} seconds.") from None
            ok = "error" not in output
        except ToolError as exc:
            output, ok = exc.as_output(), False
        except Exception as exc:  # a tool bug must never reach the call
            log.exception("tool_crashed", call_sid=context.call_sid, tool=name, error=type(exc).__name__)
            output, ok = ToolError("tool_failed", "Something went wrong on our side.").as_output(), False
        latency_ms = (time.perf_counter() - started) * 1000
        log.info("tool_done", call_sid=context.call_sid, tool=name, ok=ok, latency_ms=round(latency_ms, 1))
        return ToolOutcome(name, arguments, output, ok, latency_ms)


def _parse_arguments(arguments_json: str, tool: Tool) -> dict[str, Any]:
    try:
        arguments = json.loads(arguments_json or "{}")
    except ValueError:
        raise ToolError("bad_arguments", "The arguments were not valid JSON.") from None
    if not isinstance(arguments, dict):
        raise ToolError("bad_arguments", "The arguments must be an object.")
    required = tool.current_parameters().get("required", [])
    missing = [key for key in required if arguments.get(key) in (None, "")]
    if missing:
        raise ToolError("missing_arguments", f"Missing: {', '.join(missing)}.", missing=missing)
    return arguments
