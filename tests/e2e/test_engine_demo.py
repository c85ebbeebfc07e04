"""`voice-agent demo` with the offline engine: a whole call, end to end, with the caller's own lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo_engine import run_engine_demo


async def test_demo_with_the_engine_answers_the_callers_lines_and_hangs_up_after_goodbye(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav, transcript = tmp_path / "call.wav", tmp_path / "call.txt"
    lines = ["What are your opening hours on Saturday?", "Thanks, goodbye!"]
    code = await run_engine_demo(out=str(wav), transcript=str(transcript), lines=lines)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "caller (recognised): what are your opening hours on saturday" in out
    assert "tool: lookup_hours(date=" in out and "'open': '10:00', 'close': '14:00'" in out
    assert "we're open from ten in the morning until two in the afternoon." in out  # Saturday's hours
    assert "ended: agent_hung_up" in out, "the engine said goodbye and called end_call"
    assert "lookup_hours" in transcript.read_text() and wav.stat().st_size > 8000


async def test_demo_with_the_real_model_says_clearly_that_it_needs_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = await run_engine_demo(
        out=str(tmp_path / "c.wav"), transcript=str(tmp_path / "c.txt"), model="openai"
    )
    assert code == 2
    assert "--model openai needs OPENAI_API_KEY" in capsys.readouterr().out
