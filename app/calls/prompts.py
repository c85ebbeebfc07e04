"""The agent's words that live in `prompts/`: system instructions, greeting, filler and call-control lines."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from app.settings import Settings

RESUME_OUTCOMES = {
    "transfer_busy": "the line was busy",
    "transfer_no-answer": "nobody answered",
    "transfer_failed": "the call could not be placed",
    "transfer_canceled": "the call was cancelled",
    "transfer_declined": "the person could not take the call",
}


@dataclass(frozen=True, slots=True)
class Prompts:
    instructions: str
    greeting: str
    filler_instructions: str
    lines: dict[str, str]
    resume_template: str

    def greeting_instructions(self, notice: str = "") -> str:
        """Per-response instructions that make the model say the greeting, word for word; a required
        recording notice is its fixed first sentence (checked against what the model said)."""
        if not notice:
            return f'Greet the caller now. Say exactly this and nothing else: "{self.greeting}"'
        return (
            f'Greet the caller now. Start with this sentence, word for word: "{notice}" '
            f'Then say exactly this and nothing else: "{self.greeting}"'
        )

    @staticmethod
    def notice_instructions(notice: str) -> str:
        """The recording notice again, on its own, when the caller did not hear it all."""
        return f'Say this sentence, word for word, and nothing else: "{notice}"'

    def resume_instructions(self, resume: str) -> str:
        """The first thing said when a caller comes back from a failed hand-off."""
        outcome = RESUME_OUTCOMES.get(resume, "it did not go through")
        return self.resume_template.format(outcome=outcome)

    def line(self, name: str) -> str:
        return self.lines[name]

    @property
    def reconnected(self) -> str:
        return self.lines["reconnected"]


def load_prompts(settings: Settings, *, today: dt.date | None = None) -> Prompts:
    """Read and fill the prompt files for one day (blocking file reads: call once, off the audio path)."""
    zone = ZoneInfo(settings.business_timezone)
    day = today or dt.datetime.now(zone).date()
    values = {
        "business_name": settings.business_name,
        "business_kind": settings.business_kind,
        "business_description": settings.business_description.strip(),
        "today": day.strftime("%A %Y-%m-%d"),
        "timezone": settings.business_timezone,
        "emergency_number": settings.emergency_number,
    }
    folder = settings.prompts_dir
    lines = tomllib.loads((folder / "lines.toml").read_text(encoding="utf-8"))
    resume = lines.pop("resume")
    return Prompts(
        instructions=(folder / "system.md").read_text(encoding="utf-8").format(**values).strip(),
        greeting=(folder / "greeting.md").read_text(encoding="utf-8").format(**values).strip(),
        filler_instructions=(folder / "filler.md").read_text(encoding="utf-8").strip(),
        lines={
            key: str(value).replace("{emergency_number}", settings.emergency_number)
            for key, value in lines.items()
        },
        resume_template=str(resume["instructions"]),
    )
