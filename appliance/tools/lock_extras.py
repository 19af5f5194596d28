"""Write appliance/locks/<extra>.txt: every wheel an extra of the cllmh package needs on a site
(Debian 12: CPython 3.11, x86_64 and aarch64), pinned to one version with the SHA-256 of each
platform's wheel, in pip's --require-hashes format. The appliance role downloads and installs the
extras only through these files, so a site gets exactly the reviewed wheels.

Run after changing the extras in pyproject.toml (or to take newer versions), then review the diff:
    .venv/bin/python appliance/tools/lock_extras.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

APPLIANCE = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"  # Debian 12
ARCHES = ("x86_64", "aarch64")
SKIP = {"dev"}


def platforms(arch: str) -> list[str]:
    """pip matches --platform tags exactly: every manylinux glibc level up to Debian 12's 2.36."""
    return [f"manylinux2014_{arch}", f"linux_{arch}", *(f"manylinux_2_{n}_{arch}" for n in range(17, 37))]


def resolve(requirements: list[str], arch: str) -> dict[str, tuple[str, str]]:
    """name -> (version, sha256) of the wheels pip picks for `arch`."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        tags = [arg for tag in platforms(arch) for arg in ("--platform", tag)]
        pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        only = ["--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION, *tags]
        out = ["--target", str(Path(tmp) / "target"), "--report", str(report)]
        subprocess.run([*pip, *only, *out, *requirements], check=True)
        found = {}
        for item in json.loads(report.read_text())["install"]:
            name = item["metadata"]["name"].lower().replace("_", "-")
            found[name] = (
                item["metadata"]["version"],
                item["download_info"]["archive_info"]["hashes"]["sha256"],
            )
        return found


def lock(extra: str, requirements: list[str]) -> str:
    per_arch = {arch: resolve(requirements, arch) for arch in ARCHES}
    names = sorted(set().union(*per_arch.values()))
    lines = [
        f"# cllmh[{extra}], CPython {PYTHON_VERSION}, {'/'.join(ARCHES)}: by appliance/tools/lock_extras.py",
        "# (pip --require-hashes format; one hash per platform's wheel). Do not edit by hand.",
    ]
    for name in names:
        versions = {per_arch[arch][name][0] for arch in ARCHES if name in per_arch[arch]}
        if len(versions) != 1 or any(name not in per_arch[arch] for arch in ARCHES):
            raise SystemExit(f"{extra}: {name} resolves differently per platform: {per_arch}")
        hashes = sorted({per_arch[arch][name][1] for arch in ARCHES})
        lines.append(f"{name}=={versions.pop()} " + " ".join(f"--hash=sha256:{h}" for h in hashes))
    return "\n".join(lines) + "\n"


def main() -> int:
    extras = tomllib.loads((APPLIANCE / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out = APPLIANCE / "locks"
    out.mkdir(exist_ok=True)
    for extra, requirements in extras.items():
        if extra in SKIP:
            continue
        (out / f"{extra}.txt").write_text(lock(extra, requirements))
        print(f"{out / extra}.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
