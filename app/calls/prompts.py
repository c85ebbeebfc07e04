"""The agent's words that live in `prompts/`: system instructions, greeting, filler line."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Prompts:
    instructions: str
    greeting: str
    filler_instructions: str

    def greeting_instructions(self, preface: str = "") -> str:
        """Per-response instructions that make the model say the greeting, word for word."""
        words = f"{preface} {self.greeting}".strip()
        return f'Greet the caller now. Say exactly this and nothing else: "{words}"'


def load_prompts(settings: Settings, *, today: dt.date | None = None) -> Prompts:
    """Read and fill the prompt files for one call."""
    zone = ZoneInfo(settings.business_timezone)
    day = today or dt.datetime.now(zone).date()
    values = {
        "business_name": settings.business_name,
        "today": day.strftime("%A %Y-%m-%d"),
        "timezone": settings.business_timezone,
    }
    folder = settings.prompts_dir
    return Prompts(
        instructions=(folder / "system.md").read_text(encoding="utf-8").format(**values).strip(),
        greeting=(folder / "greeting.md").read_text(encoding="utf-8").format(**values).strip(),
        filler_instructions=(folder / "filler.md").read_text(encoding="utf-8").strip(),
    )
