"""Every setting the code reads is documented in .env.example and in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {name.upper() for name in Settings.model_fields}


def env_example_names() -> set[str]:
    """`NAME=` at the start of a line, commented out or not."""
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def readme_table_names() -> set[str]:
    """The backticked names in the first column of the README's configuration table."""
    section = (REPO / "README.md").read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1]))
    return names


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    documented = env_example_names()
    assert not SETTINGS - documented, f".env.example lacks {sorted(SETTINGS - documented)}"
    assert not documented - SETTINGS, f".env.example lists unknown settings {sorted(documented - SETTINGS)}"


def test_readme_configuration_table_matches_the_settings() -> None:
    documented = readme_table_names()
    assert not SETTINGS - documented, (
        f"the README's configuration table lacks {sorted(SETTINGS - documented)}"
    )
    assert not documented - SETTINGS, (
        f"the README's table lists unknown settings {sorted(documented - SETTINGS)}"
    )
