"""The simulated conversation: ordered items, their audio, and the token estimates for `usage`.

Token rates follow A9: user audio 10 tokens/s, assistant audio 20 tokens/s, text about 4 characters per
token, plus a few special tokens per item. The whole conversation is input to every response.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from app.sim.realtime_audio import AudioFormat

__all__ = ["Conversation", "SimItem", "text_tokens"]

USER_AUDIO_TOKENS_PER_SECOND = 10
ASSISTANT_AUDIO_TOKENS_PER_SECOND = 20
TOKENS_PER_ITEM = 4


def text_tokens(text: str) -> int:
    """Rough token count of `text` (4 characters per token)."""
    return math.ceil(len(text) / 4)


@dataclass
class SimItem:
    """One conversation item: its public JSON shape plus the audio the simulator tracks for it."""

    payload: dict[str, Any]
    output_audio: bytearray = field(default_factory=bytearray)
    output_format: AudioFormat | None = None
    input_audio_ms: float = 0.0

    @property
    def id(self) -> str:
        """The item id."""
        return str(self.payload["id"])

    @property
    def output_audio_ms(self) -> float:
        """Milliseconds of model audio generated for this item (after any truncation)."""
        if self.output_format is None:
            return 0.0
        return len(self.output_audio) / self.output_format.bytes_per_ms

    @property
    def has_output_audio(self) -> bool:
        """True for assistant audio messages that carry at least one delta of audio."""
        return self.payload.get("role") == "assistant" and len(self.output_audio) > 0

    def public(self) -> dict[str, Any]:
        """The item as events carry it (audio bytes omitted)."""
        return copy.deepcopy(self.payload)

    def token_counts(self) -> tuple[int, int]:
        """(text_tokens, audio_tokens) this item costs as input to a later response."""
        text = TOKENS_PER_ITEM
        audio = 0
        kind = self.payload.get("type")
        if kind == "function_call":
            text += text_tokens(str(self.payload.get("name", ""))) + text_tokens(
                str(self.payload.get("arguments", ""))
            )
        elif kind == "function_call_output":
            text += text_tokens(str(self.payload.get("output", "")))
        for part in self.payload.get("content", []):
            if part.get("type") in ("input_text", "output_text", "text"):
                text += text_tokens(str(part.get("text") or ""))
        audio += math.ceil(self.input_audio_ms / 1000 * USER_AUDIO_TOKENS_PER_SECOND)
        audio += math.ceil(self.output_audio_ms / 1000 * ASSISTANT_AUDIO_TOKENS_PER_SECOND)
        return text, audio


class ItemNotFound(KeyError):
    """No item with that id in the conversation."""


class Conversation:
    """The default conversation of one session."""

    def __init__(self, conversation_id: str) -> None:
        self.id = conversation_id
        self.items: list[SimItem] = []

    def get(self, item_id: str) -> SimItem | None:
        """The item with `item_id`, if present."""
        return next((item for item in self.items if item.id == item_id), None)

    def last_id(self) -> str | None:
        """Id of the last item, the `previous_item_id` of an appended one."""
        return self.items[-1].id if self.items else None

    def add(self, item: SimItem, previous_item_id: str | None = None) -> str | None:
        """Insert after `previous_item_id` ("root" = first; None = at the end); return the id before it."""
        if previous_item_id is None:
            previous = self.last_id()
            self.items.append(item)
            return previous
        if previous_item_id == "root":
            self.items.insert(0, item)
            return None
        for index, existing in enumerate(self.items):
            if existing.id == previous_item_id:
                self.items.insert(index + 1, item)
                return previous_item_id
        raise ItemNotFound(previous_item_id)

    def delete(self, item_id: str) -> bool:
        """Remove an item; False when it was not there."""
        item = self.get(item_id)
        if item is None:
            return False
        self.items.remove(item)
        return True

    def input_tokens(self, instructions: str, tools: list[dict[str, Any]]) -> tuple[int, int]:
        """(text_tokens, audio_tokens) the next response reads: instructions, tools and every item."""
        text = text_tokens(instructions) + (text_tokens(json.dumps(tools)) if tools else 0)
        audio = 0
        for item in self.items:
            item_text, item_audio = item.token_counts()
            text += item_text
            audio += item_audio
        return text, audio
