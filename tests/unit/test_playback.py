"""Playback accounting: what the caller heard, from echoed marks."""

from __future__ import annotations

from app.calls.playback import PlaybackTracker


def test_heard_ms_follows_echoed_marks_not_what_was_sent() -> None:
    tracker = PlaybackTracker()
    first = tracker.on_sent("item_a", 800, now=0.0)  # 100 ms
    second = tracker.on_sent("item_a", 800, now=0.0)
    tracker.on_sent("item_a", 800, now=0.0)
    assert tracker.on_mark(first, now=0.1) is not None
    # 10 ms after the first echo: 100 ms proven plus 10 ms of interpolation.
    assert tracker.heard_ms("item_a", now=0.11) == 110
    assert tracker.on_mark(second, now=0.2) is not None
    assert tracker.heard_ms("item_a", now=0.2) == 200
    assert tracker.sent_ms("item_a") == 300


def test_interpolation_never_passes_the_next_unechoed_mark() -> None:
    tracker = PlaybackTracker()
    tracker.on_sent("item_a", 800, now=0.0)
    # Long after sending, with no echo, we still only claim the first chunk's end.
    assert tracker.heard_ms("item_a", now=5.0) == 100


def test_marks_echoed_by_a_clear_are_ignored() -> None:
    tracker = PlaybackTracker()
    tracker.on_sent("item_a", 800, now=0.0)
    stale = tracker.on_sent("item_a", 800, now=0.0)
    tracker.on_clear(now=0.05)
    assert not tracker.is_playing
    assert tracker.on_mark(stale, now=0.06) is None
    fresh = tracker.on_sent("item_b", 160, now=0.1)
    assert fresh.split(".")[0] != stale.split(".")[0]
    assert tracker.heard_ms("item_a", now=0.1) == 50


def test_heard_is_clamped_per_item_span() -> None:
    tracker = PlaybackTracker()
    a = tracker.on_sent("item_a", 400, now=0.0)
    b = tracker.on_sent("item_b", 800, now=0.0)
    tracker.on_mark(a, now=0.05)
    tracker.on_mark(b, now=0.15)
    assert tracker.heard_ms("item_a", now=0.2) == 50
    assert tracker.heard_ms("item_b", now=0.2) == 100
    assert tracker.heard_ms("unknown", now=0.2) == 0


def test_a_skipped_echo_is_implied_by_a_later_one() -> None:
    tracker = PlaybackTracker()
    tracker.on_sent("item_a", 160, now=0.0)
    second = tracker.on_sent("item_a", 160, now=0.0)
    assert tracker.on_mark(second, now=0.04) is not None
    assert not tracker.is_playing
    assert tracker.last_mark_for("item_a") is None
