"""Head office's firewall (roles common and hardening, playbooks/group_vars/head_office/firewall.yml):
syslog over TLS (6514) and the central API (443) only from the sites' networks (the scenario: the
site's address only; the sender is outside), SSH from the admin networks, Loki never."""

from __future__ import annotations

import pytest
import testinfra

testinfra_hosts = ["docker://mol-log-hub"]

PROBE = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print(type(e).__name__)
"""


def reach(container: str, port: int) -> str:
    """A TCP connection from `container` to the hub's `port`: open, refused, or the error."""
    prober = testinfra.get_host(f"docker://{container}")
    return prober.check_output("python3 -c %s mol-log-hub %s", PROBE, str(port))


@pytest.mark.parametrize("port", [6514, 443])
def test_the_sites_ports_are_open_to_the_site_and_closed_to_other_networks(host, port):
    listening = [line.split()[3] for line in host.check_output("ss -Htln").splitlines()]
    assert f"0.0.0.0:{port}" in listening, listening  # so a refusal below is the firewall's
    assert reach("mol-log-site", port) == "open"
    assert reach("mol-log-sender", port) == "refused"


def test_ssh_is_open_to_the_admin_networks_and_loki_to_no_one(host):
    assert reach("mol-log-sender", 22) == "open"  # 172.16.0.0/12: hardening_ssh_allowed_networks
    assert reach("mol-log-site", 3100) == "refused"
    ruleset = host.check_output("nft list table inet cllmh")
    assert "policy drop" in ruleset
