"""The transcript keeps what the caller heard."""

from __future__ import annotations

from app.calls.events import MemorySink, TranscriptTurn
from app.calls.transcript import Transcript, cut_to_heard


def test_cut_to_heard_keeps_the_heard_share_of_words() -> None:
    text = "one two three four five six seven eight nine ten"
    assert cut_to_heard(text, 500, 1000) == "one two three four five"
    assert cut_to_heard(text, 0, 1000) == ""
    assert cut_to_heard(text, 2000, 1000) == text


def test_interrupted_agent_turn_is_stored_cut_and_flagged() -> None:
    sink = MemorySink()
    transcript = Transcript("CA1", sink)
    transcript.caller_said("what are your hours", None)
    transcript.agent_audio("item_1", 2000)
    transcript.agent_text("item_1", "We are open from nine until five on most weekdays.")
    transcript.agent_interrupted("item_1", 1000)
    turns = [e for e in sink.events if isinstance(e, TranscriptTurn)]
    assert [(t.speaker, t.seq) for t in turns] == [("caller", 1), ("agent", 2)]
    assert turns[1].interrupted
    assert turns[1].text == "We are open from nine"


def test_agent_turn_waits_for_generation_and_playback() -> None:
    sink = MemorySink()
    transcript = Transcript("CA1", sink)
    transcript.agent_audio("item_1", 500)
    transcript.agent_text_done("item_1", "Hello there.")
    transcript.agent_played("item_1")
    assert sink.events == []  # generation not complete yet
    transcript.agent_generated("item_1")
    transcript.agent_played("item_1")
    assert [e.text for e in sink.events if isinstance(e, TranscriptTurn)] == ["Hello there."]


def test_a_caller_turn_records_when_the_caller_stopped_speaking() -> None:
    sink = MemorySink()
    clock = iter([10.0, 12.5, 13.0, 20.0, 21.0])
    transcript = Transcript("CA1", sink, wall=lambda: next(clock))
    transcript.caller_stopped()  # 10.0: stale, before this utterance started
    transcript.caller_said("hello", 11.0)  # ended_at 12.5
    transcript.caller_stopped()  # 13.0
    transcript.caller_said("what are your hours", 12.0)  # ended_at 20.0
    turns = [e for e in sink.events if isinstance(e, TranscriptTurn)]
    assert [t.speech_ended_at for t in turns] == [None, 13.0]
