"""Fill one artifact directory for air-gapped sites (`make artifacts`), on a connected machine.

Layout of OUT (README, "Air-gapped sites"):

    SHA256SUMS                      every file below, `sha256sum -c` format
    wheels/cllmh-<version>-py3-none-any.whl
    wheels/<arch>-py<X.Y>/<extra>/  each extra's locked wheels (appliance/locks/<extra>.txt), per platform
    models/                         files/models (with their own SHA256SUMS and provenance)
    dashboard/                      the built head-office dashboard (hls.js bundled in it)
    <vendor>/...                    vendor packages copied as provided (loki/v3.4.6/..., ../shared/artifacts)
    apt/debian12-<arch>.tar         a flat APT repository (the .debs, Packages, Release) per architecture
    apt/debian12-<arch>.txt         the packages in it, one `name version` a line

Everything downloaded is checked: wheels by pip against the locks' hashes (--require-hashes), .debs
against the SHA256 of Debian's signed index as apt resolved it inside the base image (apt_closure.sh).
Downloads are kept in CACHE (~/.cache/cllmh/artifacts), so a second run only downloads what changed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PYTHON_VERSION = "3.11"  # Debian 12's, on both architectures
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}  # Debian's name -> the wheel platform's
# Packages the roles install that are not in a `*_packages` variable (tasks naming one package).
EXTRA_PACKAGES = ("nginx-light",)
EPOCH = 315532800  # 1980-01-01, as SOURCE_DATE_EPOCH for the wheel: stable files for stable inputs


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def role_packages(roles_dir: Path) -> list[str]:
    """Every Debian package named in a role's `*_packages` variable (vars/ and defaults/)."""
    names: set[str] = set(EXTRA_PACKAGES)
    for path in sorted(roles_dir.glob("*/vars/main.yml")) + sorted(roles_dir.glob("*/defaults/main.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for key, value in data.items():
            if not key.endswith("_packages"):
                continue
            if isinstance(value, list):
                names.update(str(v) for v in value)
            elif isinstance(value, str):  # a Jinja expression: the quoted names in it
                names.update(re.findall(r"'([a-z0-9][a-z0-9.+-]+)'", value))
    return sorted(names)


# --- wheels ---------------------------------------------------------------------------------------


def pip_platforms(machine: str) -> list[str]:
    """The platform tags pip must accept for Debian 12 (glibc 2.36) on `machine` (as roles/appliance)."""
    return [f"manylinux2014_{machine}", f"linux_{machine}"] + [
        f"manylinux_2_{minor}_{machine}" for minor in range(17, 37)
    ]


def wheels(out: Path, cache: Path) -> None:
    dest = out / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    step("cllmh wheel (pip wheel, SOURCE_DATE_EPOCH)")
    for old in dest.glob("cllmh-*.whl"):
        old.unlink()
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), PIP_DISABLE_PIP_VERSION_CHECK="1")
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest),
         str(ROOT / "appliance")],
        env=env,
    )  # fmt: skip
    for lock in sorted((ROOT / "appliance" / "locks").glob("*.txt")):
        for machine in ARCHES.values():
            target = dest / f"{machine}-py{PYTHON_VERSION}" / lock.stem
            step(f"wheels of [{lock.stem}] for {machine}, checked against {lock.relative_to(ROOT)}")
            target.mkdir(parents=True, exist_ok=True)
            argv = [
                sys.executable, "-m", "pip", "download", "--progress-bar", "off", "--only-binary=:all:",
                "--no-deps", "--require-hashes", "--implementation", "cp", "--python-version",
                PYTHON_VERSION, "--dest", str(target), "--cache-dir", str(cache / "pip"),
                *(f"--platform={p}" for p in pip_platforms(machine)), "--requirement", str(lock),
            ]  # fmt: skip
            run(argv, env=env, stdout=subprocess.DEVNULL)
            locked = {
                line.split("==")[0].lower().replace("_", "-").replace(".", "-")
                for line in lock.read_text().splitlines()
                if "==" in line
            }
            for whl in target.glob("*.whl"):  # wheels of an earlier lock
                name = whl.name.split("-")[0].lower().replace("_", "-").replace(".", "-")
                if name not in locked:
                    whl.unlink()
            print(f"    {len(list(target.glob('*.whl')))} wheels", flush=True)


# --- models, vendor packages, dashboard -----------------------------------------------------------


def sync_tree(src: Path, dest: Path) -> int:
    """Make dest a copy of src (files copied only when their content differs); return the file count."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    return sum(1 for p in dest.rglob("*") if p.is_file())


def models(out: Path) -> None:
    step("detector models (files/models)")
    print(f"    {sync_tree(ROOT / 'files' / 'models', out / 'models')} files", flush=True)


def vendor(out: Path, vendor_dir: Path | None) -> None:
    if vendor_dir is None or not vendor_dir.is_dir():
        step("vendor packages: none provided (give --vendor DIR)")
        return
    for sub in sorted(p for p in vendor_dir.iterdir() if p.is_dir()):
        step(f"vendor packages: {sub.name} from {vendor_dir}")
        print(f"    {sync_tree(sub, out / sub.name)} files", flush=True)


def dashboard(out: Path) -> None:
    step("head-office dashboard (make dashboard; hls.js is bundled in it from npm's hls.js)")
    run(["make", "--no-print-directory", "-C", str(ROOT), "dashboard"])
    print(f"    {sync_tree(ROOT / 'build' / 'dashboard', out / 'dashboard')} files", flush=True)


# --- Debian packages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deb:
    target: str  # the architecture it was resolved for (an Architecture: all package may be in both)
    uri: str
    filename: str
    size: int
    sha256: str


def parse_uris(text: str) -> list[Deb]:
    """apt_closure.sh's lines: TARGET-ARCH 'URI' FILE SIZE SHA256:HEX."""
    debs = []
    for line in text.splitlines():
        target, uri, filename, size, digest = line.split()
        debs.append(Deb(target, uri.strip("'"), filename, int(size), digest.removeprefix("SHA256:")))
    return debs


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_one(deb: Deb, cache: Path) -> Deb:
    part = cache / (deb.filename + ".part")
    with urllib.request.urlopen(deb.uri, timeout=60) as response, part.open("wb") as f:
        shutil.copyfileobj(response, f)
    if sha256_file(part) != deb.sha256:
        part.unlink()
        raise SystemExit(f"{deb.filename}: SHA256 differs from Debian's index ({deb.uri})")
    part.rename(cache / deb.filename)
    return deb


def fetch(debs: Iterable[Deb], cache: Path, parallel: int = 4) -> None:
    """Download every .deb not already in cache (with the right SHA256), showing the progress."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted = sorted({d.filename: d for d in debs}.values(), key=lambda d: d.filename)
    missing = [d for d in wanted if not (cache / d.filename).is_file()]
    total = sum(d.size for d in missing)
    print(f"    {len(wanted)} packages, {len(wanted) - len(missing)} cached, "
          f"{len(missing)} to download ({total / 1e6:.1f} MB)", flush=True)  # fmt: skip
    done, last = 0, 0.0
    with ThreadPoolExecutor(parallel) as pool:
        for i, deb in enumerate(as_completed(pool.submit(fetch_one, d, cache) for d in missing), 1):
            done += deb.result().size
            if time.monotonic() - last > 2 or i == len(missing):
                last = time.monotonic()
                print(f"    {i}/{len(missing)} downloaded, {done / 1e6:.1f}/{total / 1e6:.1f} MB", flush=True)


def control_field(control: str, field: str) -> str:
    match = re.search(rf"^{field}: (.*)$", control, re.MULTILINE)
    return match.group(1) if match else ""


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
    tar.addfile(info, io.BytesIO(data))


def apt_repo(out: Path, arch: str, debs: list[Deb], cache: Path) -> None:
    """A flat repository in one tar (same bytes for the same packages): the .debs, Packages(.gz), Release."""
    staging = cache / f"repo-{arch}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for deb in sorted(debs, key=lambda d: d.filename):
        os.link(cache / "debs" / deb.filename, staging / deb.filename)
    packages = run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=staging,
                   capture_output=True).stdout.encode()  # fmt: skip
    packages_gz = gzip.compress(packages, mtime=0)
    release = "Origin: CLLMH\nLabel: CLLMH artifacts\nArchitectures: {} all\nSHA256:\n{}".format(
        arch,
        "".join(
            f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}\n"
            for name, data in (("Packages", packages), ("Packages.gz", packages_gz))
        ),
    ).encode()
    dest = out / "apt"
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f"debian12-{arch}.tar.part"
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("Packages", packages), ("Packages.gz", packages_gz), ("Release", release)):
            add_bytes(tar, name, data)
        for deb in sorted(debs, key=lambda d: d.filename):
            info = tar.gettarinfo(str(staging / deb.filename), deb.filename)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = EPOCH, 0, 0, "", "", 0o644
            with (staging / deb.filename).open("rb") as f:
                tar.addfile(info, f)
    tmp.replace(dest / f"debian12-{arch}.tar")
    listing = sorted(
        " ".join(control_field(block, field) for field in ("Package", "Version", "Architecture"))
        for block in packages.decode().split("\n\n")
        if block.strip()
    )
    (dest / f"debian12-{arch}.txt").write_text("\n".join(listing) + "\n")
    shutil.rmtree(staging)
    size = (dest / f"debian12-{arch}.tar").stat().st_size
    print(f"    apt/debian12-{arch}.tar: {len(debs)} packages, {size / 1e6:.1f} MB", flush=True)


def resolve(cache: Path, image: str, arches: list[str], packages: list[str], max_days: float) -> list[Deb]:
    """What apt would install, as apt_closure.sh prints it; kept in cache for max_days (keyed by
    the packages, the architectures and the script), so that CI resolves about once a week."""
    script = Path(__file__).with_name("apt_closure.sh")
    key = hashlib.sha256(" ".join([*arches, "--", *packages, script.read_text()]).encode()).hexdigest()[:16]
    resolved = cache / f"apt-resolved-{key}.txt"
    if resolved.is_file() and time.time() - resolved.stat().st_mtime < max_days * 86400:
        age = (time.time() - resolved.stat().st_mtime) / 3600
        step(f"resolved packages from {resolved.name} ({age:.1f} h old; --apt-max-age 0 resolves again)")
        return parse_uris(resolved.read_text())
    lists = cache / "apt-lists"
    lists.mkdir(parents=True, exist_ok=True)
    step(f"resolving them with apt in a throwaway container of {image} (a few minutes)")
    result = run(
        ["docker", "run", "--rm", "-v", f"{script}:/apt_closure.sh:ro", "-v", f"{lists}:/var/lib/apt/lists",
         image, "/apt_closure.sh", " ".join(arches), *packages],
        capture_output=True,
    )  # fmt: skip
    debs = parse_uris(result.stdout)
    for old in cache.glob("apt-resolved-*.txt"):
        old.unlink()
    resolved.write_text(result.stdout)
    return debs


def apt(out: Path, cache: Path, image: str, arches: list[str], max_age_days: float) -> None:
    packages = role_packages(ROOT / "roles")
    step(f"Debian packages for {' '.join(arches)}: {len(packages)} named by the roles, with dependencies")
    print(f"    {' '.join(packages)}", flush=True)
    debs = resolve(cache, image, arches, packages, max_age_days)
    step("downloading the .debs (checked against the SHA256 of Debian's index)")
    fetch(debs, cache / "debs")
    for arch in arches:
        step(f"local APT repository for {arch}")
        apt_repo(out, arch, [d for d in debs if d.target == arch], cache)


# --- checksums ------------------------------------------------------------------------------------


def checksums(out: Path) -> None:
    step("SHA256SUMS")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256_file(p)}  {p.relative_to(out)}" for p in files]
    (out / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    size = sum(p.stat().st_size for p in files)
    print(f"    {len(files)} files, {size / 1e6:.1f} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "artifacts")
    # Outside the clone: a fresh clone on the same machine (CI) reuses the downloads.
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    parser.add_argument("--cache", type=Path, default=cache_home / "cllmh" / "artifacts")
    shared = ROOT.parent / "shared" / "artifacts"
    parser.add_argument(
        "--vendor",
        type=Path,
        default=shared if shared.is_dir() else None,
        help="vendor packages to copy as they are laid out (default ../shared/artifacts)",
    )
    parser.add_argument("--image", default=os.environ.get("CLLMH_IMAGE", "cllmh/debian12-systemd:latest"))
    parser.add_argument("--arch", action="append", choices=sorted(ARCHES), help="default: all")
    parser.add_argument(
        "--apt-max-age",
        type=float,
        default=7,
        help="days a resolved package set is reused (its .debs are cached); 0: resolve again",
    )
    parser.add_argument("--no-dashboard", action="store_true", help="skip the dashboard (needs npm)")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    cache: Path = args.cache.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wheels(out, cache)
    models(out)
    vendor(out, args.vendor)
    if not args.no_dashboard:
        dashboard(out)
    apt(out, cache, args.image, args.arch or sorted(ARCHES), args.apt_max_age)
    checksums(out)
    step(f"artifacts in {out} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
