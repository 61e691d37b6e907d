"""The lock files setup.sh installs from: they pin every dependency of pyproject.toml at a
version its range admits, and this environment runs exactly those versions."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(name: str) -> dict[str, str]:
    """name → the version pinned for this platform and Python (the lock is universal)."""
    found = {}
    for line in re.findall(r"^[A-Za-z0-9].*?(?= \\$|$)", (ROOT / name).read_text(), flags=re.M):
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            found[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return found


@pytest.mark.parametrize("lock, wanted", [
    ("requirements.lock", PROJECT["dependencies"]),
    ("requirements-test.lock", PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]),
])
def test_the_lock_pins_every_dependency_within_its_range(lock, wanted):
    pinned = pins(lock)
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in {lock}: run bash scripts/lock.sh"
        assert requirement.specifier.contains(pinned[name], prereleases=True), \
            f"{lock} pins {name}=={pinned[name]}, outside {requirement.specifier}: run bash scripts/lock.sh"
    assert "--hash=sha256:" in (ROOT / lock).read_text()


def test_this_environment_runs_the_locked_versions():
    """setup.sh installed from the test lock (a floor such as pydantic-settings>=2.2 can no
    longer pick a release without what the code uses)."""
    differ = {}
    for name, version in pins("requirements-test.lock").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            differ[name] = (None, version)
            continue
        if installed != version:
            differ[name] = (installed, version)
    assert not differ, f"installed ≠ locked: {differ} (bash scripts/setup.sh test installs the lock)"
