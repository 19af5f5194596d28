"""The flashable Raspberry Pi image (make image), checked as far as this machine can without a Pi:
its partition table, the boot partition's files, no secret baked in (the same image for every site),
the first-boot unit enabled, and in a chroot under qemu-user the first boot itself followed by the
checks that need no running kernel (nginx -t, syslog-ng --syntax-only, sshd -t, nft -c, the cllmh
configurations).

Runs on the image in CLLMH_IMAGE_DIR (make image sets it: `make image-check`); skipped without one,
since building it takes minutes of emulation (README, Raspberry Pi image)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "image"))
import check_image

NAME = "cllmh-rpi-arm64"
IMAGE_DIR = Path(os.environ["CLLMH_IMAGE_DIR"]) if os.environ.get("CLLMH_IMAGE_DIR") else None
pytestmark = pytest.mark.skipif(IMAGE_DIR is None, reason="no image to check: make image-check builds one")
# Per-box secrets the roles or packages would make: none may be in the image.
SECRETS = [
    "/etc/cllmh-status/session.secret",
    "/etc/cllmh-status/live.secret",
    "/etc/cllmh-status/users.yaml",
    "/etc/cllmh/tls/site.key",
    "/etc/cllmh/pki/host.key",
    "/var/lib/systemd/random-seed",
    "/var/lib/dbus/machine-id",
]


@pytest.fixture(scope="module")
def image() -> Iterator[check_image.Image]:
    assert IMAGE_DIR is not None
    work = check_image.temporary_workdir()
    try:
        yield check_image.Image.open(IMAGE_DIR / f"{NAME}.img", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def first_booted(image: check_image.Image) -> Path:
    """The root file system copied out, with the first boot run in it as on the box (no growing)."""
    root = image.extract_root(image.work / "rootfs")
    (root / "boot/firmware").mkdir(parents=True, exist_ok=True)
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)  # a tmpfs made at boot on the box
    # /dev is a devtmpfs on the box (empty in the image): ssh-keygen and sshd open /dev/null first
    for name, minor in [("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)]:
        node = root / "dev" / name
        if not node.exists():
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    (root / "boot/firmware/cllmh-site.txt").write_text(image.boot_text("cllmh-site.txt"))
    with (root / "boot/firmware/cllmh-site.txt").open("a") as f:
        f.write("site_name=jkt-gudang\n")
    result = check_image.in_chroot(
        root,
        "/opt/cllmh/venv/bin/cllmh",
        "firstboot",
        "--root",
        "/.",
        "--site-file",
        "/boot/firmware/cllmh-site.txt",
    )
    assert result.returncode == 0, result.stderr
    return root


def test_the_card_has_a_fat_boot_partition_then_the_ext4_root(image: check_image.Image) -> None:
    boot, root = image.table
    assert (boot.type, boot.bootable, boot.start) == ("c", True, 4 << 20)
    assert root.type == "83" and root.start == boot.start + boot.size
    assert image.label("boot") == "RASPIFIRM"
    assert image.label("root") == "RASPIROOT"


def test_the_boot_partition_boots_a_pi_4_with_debian_s_kernel(image: check_image.Image) -> None:
    files = image.boot_files()
    kernel = [f for f in files if f.startswith("vmlinuz-")]
    initrd = [f for f in files if f.startswith("initrd.img-")]
    assert kernel and initrd, files
    for firmware in ["start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "config.txt", "cmdline.txt"]:
        assert firmware in files, files
    config = image.boot_text("config.txt")
    assert "arm_64bit=1" in config
    assert re.search(rf"^kernel={re.escape(kernel[-1])}$", config, re.M), config
    assert re.search(rf"^initramfs {re.escape(initrd[-1])}", config, re.M), config
    assert "root=LABEL=RASPIROOT" in image.boot_text("cmdline.txt").split()


def test_the_initramfs_reaches_the_root_on_an_sd_card_or_a_usb_disk(first_booted: Path) -> None:
    """image/initramfs/: initramfs-tools' categories for the SD card and USB disks, not MODULES=most."""
    (initrd,) = sorted((first_booted / "boot").glob("initrd.img-*"))
    listing = check_image.in_chroot(first_booted, "lsinitramfs", f"/boot/{initrd.name}")
    assert listing.returncode == 0, listing.stderr
    modules = {Path(line).name.split(".ko")[0] for line in listing.stdout.splitlines() if ".ko" in line}
    # the Pi 4's SD card (emmc2) and sdhost, its USB 3 controller behind PCIe, USB disks, the root's ext4
    for module in ["sdhci-iproc", "sdhci-pltfm", "bcm2835", "xhci-pci", "reset-raspberrypi",
                   "usb-storage", "uas", "sd_mod", "ext4", "jbd2", "usbhid"]:  # fmt: skip
        assert module in modules or module.replace("-", "_") in modules, module
    # what MODULES=most would add for hardware a Pi does not have
    assert not {"e1000e", "ahci", "nvme", "virtio_blk"} & modules


def test_the_site_file_example_is_on_the_boot_partition(image: check_image.Image) -> None:
    text = image.boot_text("cllmh-site.txt")
    assert re.search(r"^site_name=$", text, re.M)
    assert re.search(r"^wifi_psk=$", text, re.M)


def test_the_root_mounts_both_partitions_by_label(image: check_image.Image) -> None:
    fstab = image.read("/etc/fstab")
    assert re.search(r"^LABEL=RASPIROOT\s+/\s+ext4", fstab, re.M)
    assert re.search(r"^LABEL=RASPIFIRM\s+/boot/firmware\s+vfat", fstab, re.M)
    assert image.listdir("/boot/firmware") == []


def test_no_secret_is_baked_in(image: check_image.Image) -> None:
    assert not [name for name in image.listdir("/etc/ssh") if name.startswith("ssh_host_")]
    assert image.read("/etc/machine-id").strip() == ""
    assert [path for path in SECRETS if image.exists(path)] == []


def test_the_first_boot_unit_is_enabled_with_the_box_s_services(image: check_image.Image) -> None:
    wants = image.listdir("/etc/systemd/system/multi-user.target.wants")
    for unit in ["nginx.service", "syslog-ng.service", "cllmh-guard.service", "ssh.service",
                 "systemd-networkd.service"]:  # fmt: skip
        assert unit in wants, wants
    # early boot: Debian's nftables.service (the firewall before any network) and the first boot (its
    # secrets before the status page's socket; after basic.target it made an ordering cycle)
    early = image.listdir("/etc/systemd/system/sysinit.target.wants")
    assert "nftables.service" in early and "cllmh-firstboot.service" in early, early
    unit = image.read("/etc/systemd/system/cllmh-firstboot.service")
    assert "ExecStart=/opt/cllmh/venv/bin/cllmh firstboot --site-file /boot/firmware/cllmh-site.txt" in unit
    assert "ConditionPathExists=!/var/lib/cllmh/firstboot.done" in unit


def test_the_site_roles_users_and_files_are_in_place(image: check_image.Image) -> None:
    passwd = image.read("/etc/passwd")
    for user in ["cllmh", "cllmh-status"]:
        assert re.search(rf"^{user}:", passwd, re.M), passwd
    for path in ["/opt/cllmh/venv/bin/cllmh", "/etc/nginx/nginx.conf", "/etc/syslog-ng/syslog-ng.conf",
                 "/etc/nftables.conf", "/etc/cllmh/guard.yaml", "/etc/cllmh-status/status.yaml"]:  # fmt: skip
        assert image.exists(path), path


def test_the_firewall_ruleset_passes_nft_check(first_booted: Path) -> None:
    # qemu-user has no netfilter netlink: the build machine's nft checks the image's ruleset
    argv = ["nft", "-c", "-f", str(first_booted / "etc/nftables.conf")]
    result = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_after_the_first_boot_every_configuration_validates(first_booted: Path) -> None:
    root = first_booted
    assert (root / "var/lib/cllmh/firstboot.done").exists()
    assert list((root / "etc/ssh").glob("ssh_host_ed25519_key"))
    assert (root / "etc/hostname").read_text() == "jkt-gudang\n"
    for argv in [
        ["nginx", "-t"],
        ["syslog-ng", "--syntax-only"],
        ["sshd", "-t"],
        ["/opt/cllmh/venv/bin/cllmh", "guard", "--check"],
        ["/opt/cllmh/venv/bin/cllmh", "status", "--config", "/etc/cllmh-status/status.yaml", "check"],
    ]:
        result = check_image.in_chroot(root, *argv)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
