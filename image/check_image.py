"""Read a built Raspberry Pi image (image/build.sh) without booting it and without loop devices.

The partition table with sfdisk, the FAT boot partition with mtools, the ext4 root with debugfs, each
on a byte range of the image file. `extract_root` copies the root file system out (debugfs rdump) so
the checks that need no running kernel can run its own binaries in a chroot under qemu-user
(tests/test_image.py). Standard library only; run as root (chroot, and rdump keeps owners).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512


@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str
    bootable: bool


def partitions(image: Path) -> list[Partition]:
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(image)], check=True, capture_output=True).stdout
    )
    table = table["partitiontable"]
    assert table["label"] == "dos", table
    return [
        Partition(
            number=i,
            start=p["start"] * SECTOR,
            size=p["size"] * SECTOR,
            type=p["type"],
            bootable=bool(p.get("bootable", False)),
        )
        for i, p in enumerate(table["partitions"], start=1)
    ]


def _slice(image: Path, part: Partition, dest: Path) -> Path:
    """One partition's bytes as a file (sparse: the zeros of the image stay holes)."""
    subprocess.run(
        [
            "dd", f"if={image}", f"of={dest}", "bs=1M", "conv=sparse", "status=none",
            "iflag=skip_bytes,count_bytes",
            f"skip={part.start}", f"count={part.size}",
        ],
        check=True,
    )  # fmt: skip
    return dest


@dataclass
class Image:
    """A built image opened for reading: its partitions sliced into a temporary directory."""

    path: Path
    work: Path
    boot: Path
    root: Path
    table: list[Partition]

    @classmethod
    def open(cls, path: Path, work: Path) -> Image:
        table = partitions(path)
        return cls(
            path=path,
            work=work,
            boot=_slice(path, table[0], work / "boot.vfat"),
            root=_slice(path, table[1], work / "root.ext4"),
            table=table,
        )

    def boot_files(self) -> list[str]:
        out = subprocess.run(
            ["mdir", "-i", str(self.boot), "-b", "::"], check=True, capture_output=True, text=True
        )
        return sorted(line.removeprefix("::/") for line in out.stdout.split())

    def boot_text(self, name: str) -> str:
        return subprocess.run(
            ["mtype", "-i", str(self.boot), f"::{name}"], check=True, capture_output=True, text=True
        ).stdout

    def label(self, part: str) -> str:
        """The file system label of the `boot` or `root` slice (blkid reads a file too)."""
        path = self.boot if part == "boot" else self.root
        return subprocess.run(
            ["blkid", "-o", "value", "-s", "LABEL", str(path)], check=True, capture_output=True, text=True
        ).stdout.strip()

    def _debugfs(self, request: str) -> str:
        return subprocess.run(
            ["debugfs", "-R", request, str(self.root)], check=True, capture_output=True, text=True
        ).stdout

    def exists(self, path: str) -> bool:
        result = subprocess.run(
            ["debugfs", "-R", f"stat {path}", str(self.root)], check=False, capture_output=True, text=True
        )
        return "File not found" not in result.stderr and result.stdout.strip() != ""

    def listdir(self, path: str) -> list[str]:
        # `ls -p` lines: /inode/mode/uid/gid/name/size/
        names = [
            line.split("/")[5] for line in self._debugfs(f"ls -p {path}").splitlines() if line.count("/") >= 7
        ]
        return sorted(name for name in names if name not in (".", ".."))

    def read(self, path: str) -> str:
        return self._debugfs(f"cat {path}")

    def symlink_target(self, path: str) -> str:
        out = self._debugfs(f"stat {path}")
        for line in out.splitlines():
            if line.startswith("Fast link dest:"):
                return line.split(":", 1)[1].strip().strip('"')
        raise AssertionError(f"{path} is not a symbolic link: {out[:200]}")

    def extract_root(self, dest: Path) -> Path:
        """The whole root file system as a directory (owners, modes and links kept)."""
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debugfs", "-R", f"rdump / {dest}", str(self.root)], check=True, capture_output=True)
        return dest


def in_chroot(root: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run one of the image's own (arm64) programs in its root, through qemu-user's binfmt handler."""
    return subprocess.run(
        ["chroot", str(root), *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_OFFLINE": "1", "LANG": "C.UTF-8"},
    )


def temporary_workdir() -> Path:
    base = (
        Path(tempfile.gettempdir())
        if shutil.disk_usage(tempfile.gettempdir()).free > 8 << 30
        else Path("/var/tmp")
    )
    return Path(tempfile.mkdtemp(prefix="cllmh-image-check-", dir=base))
