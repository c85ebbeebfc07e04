"""The prompts hold no business of their own: every business-specific word comes from settings."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from app.calls.prompts import load_prompts
from app.settings import load_settings
from app.sim.demo_profiles import DENTAL, SALON

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
# Words that would tie the agent to one kind of business.
TRADE_WORDS = re.compile(r"dental|dentist|patient|teeth|tooth|clinic|salon|hair|plumb", re.IGNORECASE)


@pytest.mark.parametrize("path", sorted(PROMPTS.iterdir()), ids=lambda path: path.name)
def test_prompt_files_name_no_trade(path: Path) -> None:
    assert TRADE_WORDS.findall(path.read_text(encoding="utf-8")) == []


def test_the_salon_profile_fills_the_prompts_with_the_salon() -> None:
    settings = load_settings(_env_file=None, **SALON.settings())

    prompts = load_prompts(settings, today=dt.date(2026, 12, 2))

    assert "Northside Hair Studio (hair salon)" in prompts.instructions
    assert SALON.description in prompts.instructions
    assert "Northside Hair Studio" in prompts.greeting
    assert "dental" not in (prompts.instructions + prompts.greeting).lower()


def test_the_dental_profile_is_what_the_default_settings_describe() -> None:
    prompts = load_prompts(load_settings(_env_file=None), today=dt.date(2026, 12, 2))

    assert f"{DENTAL.name} ({DENTAL.kind})" in prompts.instructions
