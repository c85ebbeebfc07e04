"""The demo businesses: what each sells, when it is open, and the settings that describe it to the agent.

`voice-agent demo --business NAME` runs the same relay, prompts and tools against either one; nothing in
the product knows which it is talking to beyond the settings here and the backend's `GET /services`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DemoService:
    id: str
    name: str
    minutes: int


@dataclass(frozen=True)
class DemoProfile:
    """One demo business."""

    key: str
    name: str
    kind: str
    description: str
    services: tuple[DemoService, ...]
    hours: dict[int, tuple[str, str] | None]  # weekday (Monday = 0) -> (opens, closes), None = closed
    timezone: str = "America/New_York"

    def minutes(self) -> dict[str, int]:
        """Service id -> its length in minutes."""
        return {service.id: service.minutes for service in self.services}

    def settings(self) -> dict[str, Any]:
        """The relay's settings that describe this business to the agent."""
        return {
            "business_name": self.name,
            "business_kind": self.kind,
            "business_description": self.description,
            "business_timezone": self.timezone,
        }


DENTAL = DemoProfile(
    key="dental",
    name="Bright Smile Dental",
    kind="dental office",
    description="",
    services=(
        DemoService("cleaning", "Cleaning", 60),
        DemoService("checkup", "Check-up", 30),
        DemoService("whitening", "Whitening", 90),
        DemoService("emergency", "Emergency visit", 30),
    ),
    hours={
        0: ("09:00", "17:00"),
        1: ("09:00", "17:00"),
        2: ("09:00", "19:00"),
        3: ("09:00", "17:00"),
        4: ("09:00", "16:00"),
        5: ("10:00", "14:00"),
        6: None,
    },
)

SALON = DemoProfile(
    key="salon",
    name="Northside Hair Studio",
    kind="hair salon",
    description="We cut, colour and style hair for everyone. Walk-ins are welcome when a chair is free.",
    services=(
        DemoService("haircut", "Haircut", 45),
        DemoService("colour", "Colour", 120),
        DemoService("blowdry", "Blow-dry", 30),
        DemoService("beard", "Beard trim", 20),
    ),
    hours={
        0: ("10:00", "19:00"),
        1: ("10:00", "19:00"),
        2: ("10:00", "19:00"),
        3: ("10:00", "20:00"),
        4: ("10:00", "19:00"),
        5: ("09:00", "17:00"),
        6: None,
    },
)

PROFILES = {profile.key: profile for profile in (DENTAL, SALON)}
