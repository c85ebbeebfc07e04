"""Schemas of the tools that control the call itself rather than ask the business backend.

The call handles these (`app/calls/control.py`): the hand-off line must be heard before the transfer, the
goodbye before the hang-up, and a message must land with the call record.
"""

from __future__ import annotations

from typing import Any

TRANSFER_REASONS = ["caller_asked", "emergency", "out_of_scope", "upset_caller", "repeated_failure", "other"]

CONTROL_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "transfer_to_human",
        "description": (
            "Connect the caller to a person (warm transfer). First tell the caller you are connecting them. "
            "For an emergency, first tell them to hang up and dial the emergency number, then call this with "
            "reason=emergency. The summary is spoken to the person before they are connected."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "enum": TRANSFER_REASONS},
                "summary": {
                    "type": "string",
                    "description": "One or two sentences for the person: who is calling, why, what was done.",
                },
            },
            "required": ["reason", "summary"],
            "additionalProperties": False,
        },
    },
    {
        "type": "function",
        "name": "end_call",
        "description": (
            "Hang up once the conversation is over and you have said goodbye in the same reply. "
            "Never use it while the caller still needs something."
        ),
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why the call is over, briefly."}},
            "additionalProperties": False,
        },
    },
    {
        "type": "function",
        "name": "take_message",
        "description": "Save a message for the staff, e.g. when nobody can take the call right now.",
        "parameters": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "caller_name": {"type": "string"},
                "callback_number": {"type": "string", "description": "If not the number they call from."},
            },
            "required": ["message"],
            "additionalProperties": False,
        },
    },
]

CONTROL_TOOL_NAMES = frozenset(tool["name"] for tool in CONTROL_TOOLS)
