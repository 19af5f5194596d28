"""The extras' lock files (appliance/locks, used by the appliance role) cover pyproject.toml's extras."""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT

EXTRAS = {
    extra: requirements
    for extra, requirements in tomllib.loads((ROOT / "appliance/pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ].items()
    if extra != "dev"
}


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_every_requirement_of_an_extra_is_pinned_with_hashes_in_its_lock(extra: str) -> None:
    pins: dict[str, str] = {}
    for line in (ROOT / f"appliance/locks/{extra}.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        requirement, *hashes = line.split()
        assert hashes and all(h.startswith("--hash=sha256:") for h in hashes), line
        name, version = requirement.split("==")
        pins[canonicalize_name(name)] = version
    for spec in EXTRAS[extra]:
        requirement = Requirement(spec)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{extra}: {spec} is not in the lock (run appliance/tools/lock_extras.py)"
        assert requirement.specifier.contains(pinned), f"{extra}: {spec} but the lock pins {pinned}"
