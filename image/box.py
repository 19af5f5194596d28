"""The flashed image as a container: the box of the arm64 Molecule scenario (roles/firstboot/molecule/arm64).

Reads the built image the way tests/test_image.py does (image/check_image.py: partition table, the FAT
boot partition with mtools, the ext4 root with debugfs; no loop device), copies the root file system out,
puts the boot partition's files in /boot/firmware where the box mounts them, writes the site file an
installer edits, and imports the tree as a Docker image whose systemd then boots it under qemu-user:
the first boot, the controller's playbook run and the services are the image's own, arm64.

What a container cannot do like a Raspberry Pi is changed, only that, and each change says why:
- /etc/fstab is emptied: Docker mounts the root; LABEL=RASPIROOT / RASPIFIRM name no device here, and
  the boot partition's mount would wait for a device that never appears;
- /etc/resolv.conf is a plain file: Docker bind-mounts its own over it (with /etc/hostname, /etc/hosts);
- masked: the units no container runs (molecule/bootstrap/masked-units, shared with the Molecule base
  images: udev, consoles, systemd-binfmt, which would unregister the host's qemu handler), networkd and
  resolved (Docker owns the network and DNS), chrony (the clock is the host's, as the common role
  decides in any container), and nftables.service (qemu-user has no netfilter netlink; make image-check
  checks the ruleset with the build machine's nft, the amd64 scenarios the firewall);
- every cllmh unit gets a drop-in `qemu-user.conf` with PrivateIPC=no and PrivateNetwork=no: under
  qemu-user systemd cannot set up those namespaces (226/NAMESPACE, 225/NETWORK); the rest of the sandbox
  applies (and SystemCallFilter= is skipped by systemd itself: qemu-user refuses seccomp filters).

Usage: box.py IMAGE_DIR TAG [KEY=VALUE ...]   (the site file's values, e.g. site_name=jkt-gudang)
An image already imported from the same .img (label cllmh.image-sha256) with the same site file is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import check_image

NAME = "cllmh-rpi-arm64"
SITE_FILE = "boot/firmware/cllmh-site.txt"
HERE = Path(__file__).resolve().parent
MASKED_UNITS = HERE.parent / "molecule/bootstrap/masked-units"
CONTAINER_ONLY_MASKS = [
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-resolved.service",
    "nftables.service",
    "chrony.service",
]


QEMU_USER_DROPIN = (
    "# image/box.py: the image booted under qemu-user emulation, where systemd cannot set up an IPC or\n"
    "# a network namespace for a unit. A Raspberry Pi runs the units without this file.\n"
    "[Service]\nPrivateIPC=no\nPrivateNetwork=no\n"
)


def masked_units() -> list[str]:
    lines = MASKED_UNITS.read_text().splitlines()
    return [
        line.strip() for line in lines if line.strip() and not line.startswith("#")
    ] + CONTAINER_ONLY_MASKS


def site_file(example: str, values: dict[str, str]) -> str:
    """The boot partition's example with the given KEY=VALUE lines filled in, as an installer edits it."""
    lines = example.splitlines()
    for key, value in values.items():
        for i, line in enumerate(lines):
            if line.startswith(f"{key}="):
                lines[i] = f"{key}={value}"
                break
        else:
            raise SystemExit(f"{key}: not a key of the image's {SITE_FILE}")
    return "\n".join(lines) + "\n"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def label(tag: str, key: str) -> str:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{key}"}}}}', tag],
        check=False,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def adapt(root: Path, site: str) -> None:
    """The container changes listed in this module's docstring."""
    (root / "etc/fstab").write_text(
        "# the image booted as a container: Docker mounts the root (image/box.py)\n"
    )
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")
    system = root / "etc/systemd/system"
    for unit in masked_units():
        link = system / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    # qemu-user: systemd cannot set up an IPC or a network namespace for a unit (226/NAMESPACE,
    # 225/NETWORK); every other directive of the units' sandbox applies
    for unit in sorted(system.glob("cllmh-*.service")):
        dropin = system / f"{unit.name}.d"
        dropin.mkdir(exist_ok=True)
        (dropin / "qemu-user.conf").write_text(QEMU_USER_DROPIN)
    (root / SITE_FILE).write_text(site)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image_dir", type=Path)
    parser.add_argument("tag")
    parser.add_argument("site", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    values = dict(item.split("=", 1) for item in args.site)
    img = args.image_dir / f"{NAME}.img"
    if not img.is_file():
        raise SystemExit(f"{img}: no image; make image builds it")
    start = time.monotonic()
    digest = sha256(img)
    recipe = hashlib.sha256(
        (digest + repr(sorted(values.items())) + repr(masked_units())).encode()
    ).hexdigest()
    if label(args.tag, "cllmh.recipe") == recipe[:16]:
        print(f"[box] {args.tag} is {img.name} already ({digest[:12]})", file=sys.stderr)
        return 0
    work = check_image.temporary_workdir()
    try:
        image = check_image.Image.open(img, work)
        root = image.extract_root(work / "root")
        firmware = root / "boot/firmware"
        firmware.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mcopy", "-s", "-p", "-n", "-i", str(image.boot), "::*", str(firmware)], check=True)
        adapt(root, site_file(image.boot_text("cllmh-site.txt"), values))
        tar = subprocess.Popen(
            ["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-c", "."], stdout=subprocess.PIPE
        )
        subprocess.run(
            [
                "docker", "import",
                "-c", "LABEL cllmh.arch=arm64",
                "-c", f"LABEL cllmh.image-sha256={digest}",
                "-c", f"LABEL cllmh.recipe={recipe[:16]}",
                "-c", "ENV container=docker",
                "-c", 'CMD ["/lib/systemd/systemd"]',
                "-", args.tag,
            ],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0:
            raise SystemExit("tar of the image's root failed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"[box] {args.tag} from {img.name} ({digest[:12]}) in {time.monotonic() - start:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
