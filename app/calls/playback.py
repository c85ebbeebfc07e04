"""What the caller has actually heard, from the marks Twilio echoes.

Every chunk of agent audio we send to Twilio is followed by a uniquely named mark. Twilio echoes a mark when
the audio queued before it has played, so the echoed marks tell us the stream position the caller has reached.
Between two echoes we interpolate at 8 bytes per ms, but never past the next mark that has not come back, and
never past what was sent (PROTOCOLS trap 1). `clear` makes Twilio return every pending mark at once, so those
echoes prove nothing: each mark name carries a generation number that `on_clear` bumps, and echoes from an
older generation are ignored (trap 6).

Positions are counted in mu-law bytes on one stream-wide axis; an item (one model audio reply) covers a span
of that axis, so "ms heard of item X" is a clamp of the played position into the item's span.

A mark goes out after at least `MARK_EVERY_BYTES` (100 ms) of audio and at the end of every item, not after
every chunk: each WebSocket message costs the relay CPU (bench/relay_bench.py measured 13% per call), and
interpolation between marks keeps the heard estimate within a playback tick.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from app.twilio.messages import MULAW_BYTES_PER_MS

MARK_EVERY_BYTES = 100 * MULAW_BYTES_PER_MS


@dataclass(slots=True)
class ItemSpan:
    """Where one model audio item sits on the stream axis."""

    item_id: str
    start: int
    sent: int = 0

    @property
    def end(self) -> int:
        return self.start + self.sent


@dataclass(frozen=True, slots=True)
class PendingMark:
    name: str
    position: int
    item_id: str


class PlaybackTracker:
    """Stream-wide playback accounting for one call. Not thread-safe; lives on the call's event loop."""

    def __init__(self) -> None:
        self._generation = 0
        self._seq = 0
        self._sent = 0  # stream bytes handed to Twilio (this generation's axis continues across clears)
        self._confirmed = 0  # stream position proven played by an echoed mark
        self._anchor_position = 0  # interpolation starts here...
        self._anchor_time = 0.0  # ...at this time
        self._pending: deque[PendingMark] = deque()
        self._unmarked = 0  # bytes sent since the last mark
        self._items: dict[str, ItemSpan] = {}
        self._current: ItemSpan | None = None

    # --- sending ---------------------------------------------------------------------------------------
    def on_sent(self, item_id: str, nbytes: int, now: float) -> str | None:
        """Account for `nbytes` of `item_id` sent to Twilio; returns a mark name to send after it, if due."""
        if not self._pending and not self._unmarked:
            # Twilio's queue was empty, so this chunk starts playing on arrival.
            self._anchor_position = self._sent
            self._anchor_time = now
        span = self._current
        if span is not None and span.item_id != item_id and self._unmarked:
            self._new_mark(span.item_id)  # an item's end always carries a mark
        if span is None or span.item_id != item_id:
            span = ItemSpan(item_id, self._sent)
            self._items[item_id] = span
            self._current = span
            if len(self._items) > 32:
                self._items.pop(next(iter(self._items)))
        span.sent += nbytes
        self._sent += nbytes
        self._unmarked += nbytes
        return self._new_mark(item_id) if self._unmarked >= MARK_EVERY_BYTES else None

    def end_of_item(self) -> str | None:
        """The current item's audio is complete: the mark to send now, if any audio is unmarked."""
        if not self._unmarked or self._current is None:
            return None
        return self._new_mark(self._current.item_id)

    def _new_mark(self, item_id: str) -> str:
        self._seq += 1
        self._unmarked = 0
        name = f"{self._generation}.{self._seq}"
        self._pending.append(PendingMark(name, self._sent, item_id))
        return name

    # --- echoes ----------------------------------------------------------------------------------------
    def on_mark(self, name: str, now: float) -> PendingMark | None:
        """Record an echoed mark; returns it when it proves playback, None for stale or unknown names."""
        while self._pending:
            mark = self._pending[0]
            if mark.name == name:
                self._pending.popleft()
                self._confirmed = mark.position
                self._anchor_position = mark.position
                self._anchor_time = now
                return mark
            if not self._is_ours(name):
                return None
            # Marks echo in order; an earlier one we never saw is implied by this one.
            self._pending.popleft()
        return None

    def _is_ours(self, name: str) -> bool:
        generation, _, seq = name.partition(".")
        return generation == str(self._generation) and any(m.name == name for m in self._pending)

    # --- reading ---------------------------------------------------------------------------------------
    def played_position(self, now: float) -> int:
        """Best estimate of the stream position the caller has heard up to."""
        if not self._pending and not self._unmarked:
            return self._sent
        elapsed_bytes = round(max(0.0, now - self._anchor_time) * 1000 * MULAW_BYTES_PER_MS)
        # Not proven past the first mark still out, nor past what was sent.
        ceiling = self._pending[0].position if self._pending else self._sent
        return max(self._confirmed, min(self._anchor_position + elapsed_bytes, ceiling))

    def heard_ms(self, item_id: str, now: float) -> int:
        """Milliseconds of `item_id` the caller heard, clamped to what was sent of it."""
        span = self._items.get(item_id)
        if span is None:
            return 0
        heard = min(max(self.played_position(now) - span.start, 0), span.sent)
        return heard // MULAW_BYTES_PER_MS

    def sent_ms(self, item_id: str) -> int:
        span = self._items.get(item_id)
        return span.sent // MULAW_BYTES_PER_MS if span else 0

    @property
    def is_playing(self) -> bool:
        """True while Twilio still holds agent audio the caller has not heard."""
        return bool(self._pending) or self._unmarked > 0

    @property
    def current_item(self) -> str | None:
        return self._current.item_id if self._current else None

    def last_mark_for(self, item_id: str) -> str | None:
        """The name of the newest pending mark of `item_id` (to learn when it has finished playing)."""
        for mark in reversed(self._pending):
            if mark.item_id == item_id:
                return mark.name
        return None

    # --- barge-in --------------------------------------------------------------------------------------
    def on_clear(self, now: float) -> None:
        """Twilio was told to drop its queue: forget pending marks; the axis resumes at what was heard."""
        self._sent = self.played_position(now)
        self._confirmed = self._sent
        self._anchor_position = self._sent
        self._anchor_time = now
        self._pending.clear()
        self._unmarked = 0
        self._generation += 1
        if self._current is not None:
            self._current.sent = max(0, self._sent - self._current.start)
        self._current = None
