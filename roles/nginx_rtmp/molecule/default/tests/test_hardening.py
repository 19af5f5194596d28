"""The hardened box seen from another host on its network (mol-nginx-viewer): a port scan finds exactly
the allowed ports, SSH takes keys only and never root, and the settings behind that are in force."""

from __future__ import annotations

import re

import pytest
import testinfra
from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-nginx-site"]

SITE = "mol-nginx-site"
# nginx_rtmp's HTTP redirect and HTTPS; RTMP because this site has a publish key and a play token; SSH.
ALLOWED = {22, 80, 443, 1935}
SSH = "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10"


@pytest.fixture(scope="module")
def viewer():
    return testinfra.get_host("docker://mol-nginx-viewer")


@pytest.fixture(scope="module")
def stray_listener(host):
    """A service the firewall was not told about, listening on every address of the site."""
    host.check_output("systemd-run --unit=stray-listener --collect python3 -m http.server 9999")
    # systemd-run returns when the unit started, not when Python listens (seconds on a loaded machine).
    wait_for(lambda: ":9999 " in host.check_output("ss -ltn"), timeout=30)
    yield 9999
    host.run("systemctl stop stray-listener")


def test_a_port_scan_from_another_host_sees_exactly_the_allowed_ports(host, viewer, stray_listener):
    assert f":{stray_listener} " in host.check_output("ss -ltn")  # it does listen
    scan = viewer.check_output(f"nmap -Pn -sT -p- -T4 --max-retries 1 -oG - {SITE}")
    print(scan)
    found = {int(port) for port in re.findall(r"(\d+)/open/tcp", scan)}
    assert found == ALLOWED, scan


def test_udp_syslog_is_not_reachable_when_the_play_has_no_syslog_role(viewer):
    scan = viewer.check_output(f"nmap -Pn -sU -p 514 --max-retries 1 -oG - {SITE}")
    assert "514/open/udp" not in scan, scan


def test_ssh_with_the_admin_s_key_is_allowed(viewer):
    assert viewer.check_output(f"{SSH} -o BatchMode=yes admin@{SITE} id -un") == "admin"


def test_ssh_as_root_is_refused_even_with_an_authorised_key(host, viewer):
    # prepare.yml put the admin's key into root's authorized_keys on the site.
    assert host.file("/root/.ssh/authorized_keys").contains("ssh-ed25519")
    result = viewer.run(f"{SSH} -o BatchMode=yes root@{SITE} true")
    assert result.rc != 0 and "Permission denied" in result.stderr, result.stderr


def test_ssh_with_the_right_password_is_refused(host, viewer):
    host.check_output("echo 'admin:Sandi-Admin-2026' | chpasswd")
    try:
        result = viewer.run(
            f"sshpass -p Sandi-Admin-2026 {SSH} -o PubkeyAuthentication=no "
            f"-o PreferredAuthentications=password,keyboard-interactive admin@{SITE} true"
        )
    finally:
        host.check_output("usermod -p '*' admin")
    assert result.rc != 0 and "Permission denied (publickey)" in result.stderr, result.stderr


def test_sshd_runs_the_validated_hardened_settings(host):
    settings = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert settings["permitrootlogin"] == "no"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["authenticationmethods"] == "publickey"
    assert "cbc" not in settings["ciphers"] and "sha1" not in settings["macs"]
    assert settings["ciphers"].split(",")[0] == "chacha20-poly1305@openssh.com"


def test_the_firewall_drops_by_default_and_fail2ban_watches_ssh(host):
    ruleset = host.check_output("nft list table inet cllmh")
    assert "policy drop" in ruleset
    assert "Currently banned" in host.check_output("fail2ban-client status sshd")
