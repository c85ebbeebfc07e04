"""The lock files pin, with hashes, every dependency pyproject.toml asks for (refresh: scripts/lock)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN.findall((REPO / lock).read_text())}


def requirements(extra: str | None) -> list[Requirement]:
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed: list[str] = table["dependencies"] if extra is None else table["optional-dependencies"][extra]
    return [Requirement(line) for line in listed]


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", [None]), ("requirements-dev.lock", [None, "dev"])]
)
def test_the_lock_pins_every_dependency_within_its_bounds(lock: str, extras: list[str | None]) -> None:
    pinned = pins(lock)
    missing, outside = [], []
    for extra in extras:
        for requirement in requirements(extra):
            version = pinned.get(canonicalize_name(requirement.name))
            if version is None:
                missing.append(requirement.name)
            elif not requirement.specifier.contains(version, prereleases=True):
                outside.append(f"{requirement.name}=={version} (wants {requirement.specifier})")
    assert not missing and not outside, (
        f"{lock} is stale, run scripts/lock: missing {missing}, outside {outside}"
    )


def test_both_locks_pin_the_same_runtime_versions_with_hashes() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (REPO / lock).read_text()
        assert text.count("--hash=sha256:") >= len(pins(lock)), lock


def test_the_locks_were_made_from_this_pyproject() -> None:
    wanted = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "lock-fingerprint")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert f"# dependencies-fingerprint: {wanted}\n" in (REPO / lock).read_text(), (
            f"{lock} was made from other dependencies than pyproject.toml lists: run scripts/lock"
        )
