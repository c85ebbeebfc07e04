"""A call's latency stamps, observed into the relay's metrics the moment each figure is known.

`perf_counter` stamps only: the greeting (stream start -> first agent frame sent), each reply's first audio
(caller speech stopped -> first agent frame sent) and the relay's barge-in reaction (speech_started ->
`clear` sent). The audio path checks one flag per frame (`awaiting_audio`) and calls in here only when a
figure is due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.metrics import RelayMetrics


@dataclass(slots=True)
class CallTimings:
    """perf_counter stamps for latency figures."""

    prepared_at: float = 0.0
    model_ready_at: float | None = None
    stream_started_at: float | None = None
    first_delta_at: float | None = None
    first_audio_sent_at: float | None = None
    last_barge_in_ms: float | None = None
    reply_awaited_since: float | None = None  # the caller stopped speaking; the next agent frame answers
    awaiting_audio: bool = True  # a first frame (greeting or reply) is due: `audio_sent` has work to do

    def audio_sent(self, nbytes: int, metrics: RelayMetrics) -> None:
        """An agent frame (or, with `nbytes` 0, an item's closing mark) went to Twilio."""
        now = time.perf_counter()
        if self.first_audio_sent_at is None:
            self.first_audio_sent_at = now
            if self.stream_started_at is not None:
                metrics.greeting.observe(now - self.stream_started_at)
        elif self.reply_awaited_since is not None and nbytes:
            metrics.reply_first_audio.observe(now - self.reply_awaited_since)
            self.reply_awaited_since = None
        self.awaiting_audio = self.reply_awaited_since is not None

    def caller_speech_started(self) -> None:
        """The caller is talking: no reply is awaited until they stop."""
        self.reply_awaited_since = None
        self.awaiting_audio = self.first_audio_sent_at is None

    def caller_speech_stopped(self) -> None:
        """The caller stopped: the wait a caller feels for the reply starts now."""
        self.reply_awaited_since = time.perf_counter()
        self.awaiting_audio = True

    def barge_in_reacted(self, started: float, metrics: RelayMetrics) -> None:
        """`clear` was sent for a barge-in detected at `started` (perf_counter)."""
        reaction = time.perf_counter() - started
        self.last_barge_in_ms = reaction * 1000
        metrics.barge_in.observe(reaction)
