"""First boot of a flashed Raspberry Pi image: make this box's own secrets and read its site file.

The image is the same for every site, so it carries no secret. The first boot (unit
cllmh-firstboot.service, role firstboot) makes them here, once:

- SSH host keys (`ssh-keygen -A`);
- the status page's session secret and a provisional live secret (the controller's playbook run later
  writes the inventory's live secret, which head office shares);
- the self-signed TLS key and certificate nginx serves until the playbook run installs others;
- the host name, the head office address and the optional Wi-Fi from the site file on the boot
  partition (`cllmh-site.txt`, KEY=VALUE lines, edited on any computer before the first boot); the
  Wi-Fi passphrase is stored on the box as its WPA key and blanked in the site file;
- the root partition and file system grown to the card (`growpart`, `resize2fs`).

Parsing and the file contents are pure functions; `run` does the I/O under a root directory (`/` on the
box, a temporary directory in tests). Standard library only: it runs before anything else.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import string
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

SITE_FILE_NAME = "cllmh-site.txt"
DONE_MARKER = "var/lib/cllmh/firstboot.done"
SITE_JSON = "etc/cllmh/site.json"
SESSION_SECRET = "etc/cllmh-status/session.secret"
LIVE_SECRET = "etc/cllmh-status/live.secret"
STATUS_GROUP = "cllmh-status"
TLS_DIR = "etc/cllmh/tls"
WIFI_INTERFACE = "wlan0"
KEYS = ("site_name", "head_office", "wifi_ssid", "wifi_psk", "wifi_country")

# A site name becomes the host name: letters, digits and '-', not at either end (RFC 1123 label).
_SITE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SECRET_CHARS = string.ascii_letters + string.digits


class SiteFileError(ValueError):
    """The site file cannot be used; the message names the line and says what to write (EN / ID)."""


@dataclass(frozen=True)
class Wifi:
    ssid: str
    psk: str
    country: str = "ID"


@dataclass(frozen=True)
class SiteFile:
    site_name: str = ""
    head_office: str = ""
    wifi: Wifi | None = None


def parse_site_file(text: str) -> SiteFile:
    """Read KEY=VALUE lines (`#` comments, blank lines; a Windows editor's BOM and CRLF are fine)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in KEYS:
            raise SiteFileError(
                f"line {number}: expected one of {', '.join(KEYS)} as KEY=VALUE, got {line!r} "
                f"(baris {number}: tulis KEY=NILAI)"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    site_name = values.get("site_name", "").lower()
    if site_name and not _SITE_NAME.match(site_name):
        raise SiteFileError(
            f"site_name {site_name!r}: use letters, digits and '-', at most 63 "
            "(nama situs: huruf, angka dan '-', maksimal 63)"
        )
    head_office = values.get("head_office", "")
    if head_office and not _HOST_PORT.match(head_office):
        raise SiteFileError(
            f"head_office {head_office!r}: a host name or address, optionally :port "
            "(alamat kantor pusat: nama host atau IP, boleh dengan :port)"
        )
    ssid, psk = values.get("wifi_ssid", ""), values.get("wifi_psk", "")
    country = values.get("wifi_country", "ID").upper() or "ID"
    wifi = None
    if ssid:
        if not 1 <= len(ssid.encode()) <= 32:
            raise SiteFileError("wifi_ssid: 1 to 32 bytes (nama Wi-Fi: 1 sampai 32 byte)")
        # empty: the first boot stored the key already and blanked the passphrase here
        if psk and not (8 <= len(psk) <= 63 or re.fullmatch(r"[0-9a-f]{64}", psk)):
            raise SiteFileError(
                "wifi_psk: the Wi-Fi password has 8 to 63 characters (kata sandi Wi-Fi: 8 sampai 63 karakter)"
            )
        if not _COUNTRY.match(country):
            raise SiteFileError(f"wifi_country {country!r}: two letters, e.g. ID (dua huruf, mis. ID)")
        wifi = Wifi(ssid=ssid, psk=psk, country=country)
    elif psk:
        raise SiteFileError("wifi_psk without wifi_ssid (kata sandi Wi-Fi tanpa nama Wi-Fi)")
    return SiteFile(site_name=site_name, head_office=head_office, wifi=wifi)


def wpa_key(wifi: Wifi) -> str:
    """The WPA pre-shared key (what wpa_passphrase prints): the passphrase never lands on the box."""
    if not wifi.psk:
        raise SiteFileError(f"wifi_psk: no password for {wifi.ssid!r} (kata sandi Wi-Fi kosong)")
    if re.fullmatch(r"[0-9a-f]{64}", wifi.psk):
        return wifi.psk
    return hashlib.pbkdf2_hmac("sha1", wifi.psk.encode(), wifi.ssid.encode(), 4096, 32).hex()


def wpa_supplicant_conf(wifi: Wifi) -> str:
    ssid = wifi.ssid.encode().hex()  # hex: any character of the SSID is safe
    return (
        "# Written by cllmh-firstboot from the boot partition's site file.\n"
        "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\n"
        f"country={wifi.country}\n"
        "network={\n"
        f"    ssid={ssid}\n"
        f"    psk={wpa_key(wifi)}\n"
        "}\n"
    )


def blank_psk(text: str) -> str:
    """The site file with its Wi-Fi passphrase removed (the key is on the box by then)."""
    return re.sub(
        r"(?m)^(\s*wifi_psk\s*=).*?(\r?)$", r"\1\2", text.lstrip("\ufeff")
    )  # keeps the line ending the editor used


def hosts_file(current: str, host_name: str) -> str:
    kept = [line for line in current.splitlines() if not line.startswith("127.0.1.1")]
    return "\n".join([*kept, f"127.0.1.1\t{host_name}"]) + "\n"


def split_partition(device: str) -> tuple[str, int]:
    """`/dev/mmcblk0p2` -> (`/dev/mmcblk0`, 2); `/dev/sda2` -> (`/dev/sda`, 2); for growpart."""
    match = re.fullmatch(
        r"(/dev/(?:mmcblk|nvme|loop)\d+(?:n\d+)?)p(\d+)|(/dev/(?:sd|vd|hd|xvd)[a-z]+)(\d+)", device
    )
    if not match:
        raise ValueError(f"not a partition device: {device}")
    disk = match.group(1) or match.group(3)
    return disk, int(match.group(2) or match.group(4))


def new_secret(length: int) -> str:
    return "".join(secrets.choice(_SECRET_CHARS) for _ in range(length))


def _group_id(root: Path, group: str) -> int | None:
    try:
        for line in (root / "etc/group").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == group:
                return int(fields[2])
    except OSError:
        return None
    return None


def _write(path: Path, content: str, mode: int, gid: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(tmp, mode)
    if gid is not None:
        os.chown(tmp, 0, gid)
    try:
        os.replace(tmp, path)
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise
        # a file mounted over (a container runtime's /etc/hostname and /etc/hosts) cannot be replaced:
        # its content is written in place
        os.unlink(tmp)
        with path.open("w") as f:
            f.write(content)


def _ensure_secret(path: Path, length: int, gid: int | None) -> bool:
    if path.exists() and path.read_text().strip():
        return False
    _write(path, new_secret(length) + "\n", 0o640, gid)
    return True


def _tls(root: Path, host_name: str) -> bool:
    key, cert = root / TLS_DIR / "site.key", root / TLS_DIR / "site.crt"
    if key.exists() and cert.exists():
        return False
    key.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key.parent, 0o700)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "3650", "-subj", f"/CN={host_name}",
            "-addext", f"subjectAltName=DNS:{host_name},DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return True


def _grow_root() -> str:
    """Grow the root partition and file system to the card; a root that is no partition (the image
    booted as a container in the arm64 Molecule scenario, a network root) has nothing to grow."""
    device = subprocess.run(
        ["findmnt", "-no", "SOURCE", "/"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        disk, number = split_partition(device)
    except ValueError:
        return f"root on {device or 'an unknown source'} is not a partition: not grown"
    grown = subprocess.run(["growpart", disk, str(number)], check=False, capture_output=True, text=True)
    if grown.returncode not in (0, 1):  # 1: NOCHANGE (already the whole card)
        raise RuntimeError(f"growpart {disk} {number}: {grown.stdout}{grown.stderr}")
    subprocess.run(["resize2fs", device], check=True, capture_output=True)
    return f"grew {device}"


def run(root: Path, site_file: Path, *, live: bool) -> list[str]:
    """Do the first boot under `root`; `live`: on the running box (host name now, grow, Wi-Fi up).

    Returns what was done, one line each. A broken site file raises SiteFileError before any change.
    """
    text = site_file.read_text(encoding="utf-8-sig") if site_file.is_file() else ""
    site = parse_site_file(text)
    done: list[str] = []
    gid = _group_id(root, STATUS_GROUP)

    keygen = ["ssh-keygen", "-A"] + ([] if root == Path("/") else ["-f", str(root)])
    (root / "etc/ssh").mkdir(parents=True, exist_ok=True)
    subprocess.run(keygen, check=True, capture_output=True)
    done.append("ssh host keys")
    if _ensure_secret(root / SESSION_SECRET, 64, gid):
        done.append("status page session secret")
    if _ensure_secret(root / LIVE_SECRET, 43, gid):
        done.append("provisional live secret")

    host_name = site.site_name or (root / "etc/hostname").read_text().strip() or "cllmh"
    if site.site_name:
        _write(root / "etc/hostname", host_name + "\n", 0o644)
        hosts = root / "etc/hosts"
        _write(hosts, hosts_file(hosts.read_text() if hosts.exists() else "", host_name), 0o644)
        if live:
            subprocess.run(["hostname", host_name], check=True)
        done.append(f"host name {host_name}")
    if _tls(root, host_name):
        done.append("self-signed TLS certificate")
    _write(root / SITE_JSON, json.dumps(asdict(site) | {"wifi": bool(site.wifi)}, indent=2) + "\n", 0o644)

    if site.wifi:
        conf = root / f"etc/wpa_supplicant/wpa_supplicant-{WIFI_INTERFACE}.conf"
        if site.wifi.psk or not conf.exists():
            _write(conf, wpa_supplicant_conf(site.wifi), 0o600)
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / f"wpa_supplicant@{WIFI_INTERFACE}.service"
        if not link.is_symlink():
            link.symlink_to("/lib/systemd/system/wpa_supplicant@.service")
        if site.wifi.psk and not re.fullmatch(r"[0-9a-f]{64}", site.wifi.psk):
            site_file.write_text(blank_psk(text))
        if live:
            unit = f"wpa_supplicant@{WIFI_INTERFACE}.service"
            subprocess.run(["systemctl", "start", "--no-block", unit], check=False)
        done.append(f"Wi-Fi {site.wifi.ssid}")

    if live:
        done.append(_grow_root())
    _write(root / DONE_MARKER, "\n".join(done) + "\n", 0o644)
    return done
