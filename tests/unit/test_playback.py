"""Playback accounting: what the caller heard, from echoed marks."""

from __future__ import annotations

from app.calls.playback import PlaybackTracker


def sent(tracker: PlaybackTracker, item_id: str, nbytes: int, now: float) -> str:
    """Send a chunk that is due a mark (100 ms or more), returning the mark's name."""
    name = tracker.on_sent(item_id, nbytes, now)
    assert name is not None
    return name


def test_heard_ms_follows_echoed_marks_not_what_was_sent() -> None:
    tracker = PlaybackTracker()
    first = sent(tracker, "item_a", 800, now=0.0)  # 100 ms
    second = sent(tracker, "item_a", 800, now=0.0)
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
    stale = sent(tracker, "item_a", 800, now=0.0)
    tracker.on_clear(now=0.05)
    assert not tracker.is_playing
    assert tracker.on_mark(stale, now=0.06) is None
    assert tracker.on_sent("item_b", 160, now=0.1) is None  # less than 100 ms: no mark yet
    fresh = tracker.end_of_item()
    assert fresh is not None and fresh.split(".")[0] != stale.split(".")[0]
    assert tracker.heard_ms("item_a", now=0.1) == 50


def test_heard_is_clamped_per_item_span() -> None:
    tracker = PlaybackTracker()
    assert tracker.on_sent("item_a", 400, now=0.0) is None
    b = tracker.on_sent("item_b", 800, now=0.0)  # switching items closes item_a with a mark first
    assert b is not None
    a = tracker.last_mark_for("item_a")
    assert a is not None
    tracker.on_mark(a, now=0.05)
    tracker.on_mark(b, now=0.15)
    assert tracker.heard_ms("item_a", now=0.2) == 50
    assert tracker.heard_ms("item_b", now=0.2) == 100
    assert tracker.heard_ms("unknown", now=0.2) == 0


def test_a_skipped_echo_is_implied_by_a_later_one() -> None:
    tracker = PlaybackTracker()
    tracker.on_sent("item_a", 800, now=0.0)
    second = tracker.on_sent("item_a", 800, now=0.0)
    assert second is not None
    assert tracker.on_mark(second, now=0.2) is not None
    assert not tracker.is_playing
    assert tracker.last_mark_for("item_a") is None


def test_marks_are_coalesced_to_one_per_100_ms_and_one_at_each_items_end() -> None:
    tracker = PlaybackTracker()
    names = [tracker.on_sent("item_a", 160, now=0.0) for _ in range(12)]  # 12 x 20 ms
    assert [n is not None for n in names].count(True) == 2  # at 100 ms and 200 ms
    assert tracker.is_playing
    closing = tracker.end_of_item()
    assert closing is not None and tracker.end_of_item() is None
    # Between marks, what was heard is interpolated but never past what was sent.
    assert tracker.heard_ms("item_a", now=0.05) == 50
    assert tracker.heard_ms("item_a", now=10.0) == 100  # not proven past the first mark still out
    for name in names:
        if name is not None:
            tracker.on_mark(name, now=0.2)
    tracker.on_mark(closing, now=0.24)
    assert not tracker.is_playing and tracker.heard_ms("item_a", now=0.3) == 240
