"""First boot of a flashed image: the site file read strictly, and this box's secrets made once, on
real files under a temporary root with the real ssh-keygen and openssl."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cllmh import firstboot

EXAMPLE = Path(__file__).resolve().parents[2] / "roles/firstboot/files/cllmh-site.txt"

needs_tools = pytest.mark.skipif(
    not (shutil.which("ssh-keygen") and shutil.which("openssl")), reason="ssh-keygen and openssl needed"
)


def test_the_shipped_example_parses_and_sets_nothing_yet() -> None:
    assert firstboot.parse_site_file(EXAMPLE.read_text()) == firstboot.SiteFile()


def test_a_windows_edited_site_file_reads_the_same() -> None:
    text = "\ufeffsite_name = JKT-Gudang\r\nhead_office=logs.example.co.id:6514\r\n# Wi-Fi\r\n"
    text += 'wifi_ssid="Toko Wifi"\r\nwifi_psk=rahasia123\r\n'
    site = firstboot.parse_site_file(text)
    assert site == firstboot.SiteFile(
        site_name="jkt-gudang",
        head_office="logs.example.co.id:6514",
        wifi=firstboot.Wifi(ssid="Toko Wifi", psk="rahasia123", country="ID"),
    )


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("sitename=x", "line 1"),
        ("site_name=toko_1", "site_name"),
        ("site_name=-toko", "site_name"),
        ("head_office=https://hq/", "head_office"),
        ("wifi_ssid=Toko\nwifi_psk=short", "wifi_psk"),
        ("wifi_psk=rahasia123", "wifi_psk without wifi_ssid"),
        ("wifi_ssid=Toko\nwifi_psk=rahasia123\nwifi_country=IDN", "wifi_country"),
    ],
)
def test_a_bad_site_file_is_refused_with_the_key_named(text: str, names: str) -> None:
    with pytest.raises(firstboot.SiteFileError, match=names):
        firstboot.parse_site_file(text)


def test_the_wpa_key_is_what_wpa_passphrase_derives() -> None:
    wifi = firstboot.Wifi(ssid="Toko Wifi", psk="rahasia123")
    expected = hashlib.pbkdf2_hmac("sha1", b"rahasia123", b"Toko Wifi", 4096, 32).hex()
    assert firstboot.wpa_key(wifi) == expected
    conf = firstboot.wpa_supplicant_conf(wifi)
    assert f"psk={expected}" in conf
    assert "rahasia123" not in conf
    assert f"ssid={b'Toko Wifi'.hex()}" in conf
    if shutil.which("wpa_passphrase"):
        out = subprocess.run(
            ["wpa_passphrase", "Toko Wifi", "rahasia123"], check=True, capture_output=True, text=True
        )
        assert f"psk={expected}" in out.stdout


def test_blanking_the_passphrase_keeps_every_other_line() -> None:
    text = "site_name=toko\r\nwifi_ssid=Toko\r\nwifi_psk=rahasia123\r\nwifi_country=ID\r\n"
    assert firstboot.blank_psk(text) == "site_name=toko\r\nwifi_ssid=Toko\r\nwifi_psk=\r\nwifi_country=ID\r\n"


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("/dev/mmcblk0p2", ("/dev/mmcblk0", 2)),
        ("/dev/nvme0n1p2", ("/dev/nvme0n1", 2)),
        ("/dev/sda2", ("/dev/sda", 2)),
    ],
)
def test_the_root_partition_splits_into_disk_and_number(device: str, expected: tuple[str, int]) -> None:
    assert firstboot.split_partition(device) == expected


def test_a_whole_disk_is_not_a_partition() -> None:
    with pytest.raises(ValueError, match="not a partition"):
        firstboot.split_partition("/dev/mmcblk0")


def _image_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("cllmh\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tcllmh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    return root


@needs_tools
def test_first_boot_makes_every_secret_once_and_takes_the_site_file(tmp_path: Path) -> None:
    root = _image_root(tmp_path)
    site_file = tmp_path / "cllmh-site.txt"
    site_file.write_text(
        "site_name=jkt-gudang\nhead_office=logs.example.co.id\nwifi_ssid=Toko\nwifi_psk=rahasia123\n"
    )
    done = firstboot.run(root, site_file, live=False)
    assert "ssh host keys" in done
    assert "status page session secret" in done
    assert "provisional live secret" in done
    assert "host name jkt-gudang" in done
    assert list((root / "etc/ssh").glob("ssh_host_ed25519_key*"))
    session = (root / firstboot.SESSION_SECRET).read_text().strip()
    live = (root / firstboot.LIVE_SECRET).read_text().strip()
    assert len(session) == 64 and len(live) == 43 and session != live
    assert stat.S_IMODE((root / firstboot.LIVE_SECRET).stat().st_mode) == 0o640
    assert (root / "etc/hostname").read_text() == "jkt-gudang\n"
    assert "127.0.1.1\tjkt-gudang" in (root / "etc/hosts").read_text()
    assert "127.0.1.1\tcllmh" not in (root / "etc/hosts").read_text()
    cert = root / firstboot.TLS_DIR / "site.crt"
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", cert], check=True, capture_output=True, text=True
    )
    assert "CN = jkt-gudang" in subject.stdout
    assert stat.S_IMODE((root / firstboot.TLS_DIR / "site.key").stat().st_mode) == 0o600
    assert json.loads((root / firstboot.SITE_JSON).read_text())["head_office"] == "logs.example.co.id"
    wpa = root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    assert stat.S_IMODE(wpa.stat().st_mode) == 0o600
    assert (root / "etc/systemd/system/multi-user.target.wants/wpa_supplicant@wlan0.service").is_symlink()
    # the passphrase left the boot partition; the key stays on the box
    assert "rahasia123" not in site_file.read_text()
    assert (root / firstboot.DONE_MARKER).exists()

    # a second run (the marker removed by hand) keeps the secrets: they are the box's identity
    keys = {p.name: p.read_bytes() for p in (root / "etc/ssh").glob("ssh_host_*")}
    again = firstboot.run(root, site_file, live=False)
    assert "status page session secret" not in again
    assert "Wi-Fi Toko" in again
    assert wpa.read_text() == firstboot.wpa_supplicant_conf(firstboot.Wifi(ssid="Toko", psk="rahasia123"))
    assert (root / firstboot.SESSION_SECRET).read_text().strip() == session
    assert {p.name: p.read_bytes() for p in (root / "etc/ssh").glob("ssh_host_*")} == keys


@needs_tools
def test_a_broken_site_file_changes_nothing(tmp_path: Path) -> None:
    root = _image_root(tmp_path)
    site_file = tmp_path / "cllmh-site.txt"
    site_file.write_text("site_name=toko_1\n")
    with pytest.raises(firstboot.SiteFileError):
        firstboot.run(root, site_file, live=False)
    assert not (root / "etc/ssh").exists()
    assert not (root / firstboot.DONE_MARKER).exists()


@needs_tools
@pytest.mark.skipif(os.geteuid() != 0, reason="a bind mount needs root (CI runs as root)")
def test_a_host_name_file_mounted_over_is_written_in_place(tmp_path: Path) -> None:
    """A container runtime mounts its own /etc/hostname and /etc/hosts: rename cannot replace them."""
    root = _image_root(tmp_path)
    outside = tmp_path / "runtime-hostname"
    outside.write_text("05b5347fe899\n")
    subprocess.run(["mount", "--bind", str(outside), str(root / "etc/hostname")], check=True)
    try:
        site_file = tmp_path / "cllmh-site.txt"
        site_file.write_text("site_name=jkt-gudang\n")
        done = firstboot.run(root, site_file, live=False)
        assert "host name jkt-gudang" in done
        assert outside.read_text() == "jkt-gudang\n"  # through the mount: the same file
        assert not (root / "etc/.hostname.tmp").exists()
    finally:
        subprocess.run(["umount", str(root / "etc/hostname")], check=True)
