"""The scenario really is air-gapped: its network is internal, no host reaches Debian's archive or
PyPI, and apt reads only the artifact directory's repository (the roles' packages came from there)."""

from __future__ import annotations

import subprocess

import pytest

testinfra_hosts = ["docker://mol-rec-site", "docker://mol-rec-camera"]
NETWORK = "cllmh-mol-rec-airgap"  # molecule.yml

# Debian's archive and PyPI: what the roles would otherwise download from.
OUTSIDE = [("deb.debian.org", 80), ("pypi.org", 443), ("files.pythonhosted.org", 443)]
# The same check with an address, so that a missing DNS answer alone cannot make it pass
# (151.101.0.223: one of PyPI's Fastly addresses; any public address would do).
OUTSIDE_ADDRESSES = [("151.101.0.223", 443)]

# Exit status 0 only when a TCP connection to argv[1]:argv[2] opens within 5 s.
PROBE = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)"
CONNECT = f'python3 -c "{PROBE}" {{}} {{}}'


def test_the_scenario_s_network_is_internal():
    # Docker still gives the hosts a default route to the bridge's address, but drops what an internal
    # network's bridge would forward: the cut is the network's setting (and the probes below).
    internal = subprocess.run(
        ["docker", "network", "inspect", "--format", "{{.Internal}}", NETWORK],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert internal == "true"


@pytest.mark.parametrize(("name", "port"), OUTSIDE + OUTSIDE_ADDRESSES)
def test_the_outside_is_unreachable(host, name, port):
    result = host.run(CONNECT.format(name, port))
    assert result.rc != 0, f"{name}:{port} is reachable from the scenario's host"


def test_apt_reads_only_the_artifact_directory_s_repository(host):
    # apt-get indextargets lists every index apt would read: all of them from the local repository.
    sites = set(host.check_output("apt-get indextargets --format '$(SITE)'").split())
    assert sites == {"file:/var/lib/cllmh/apt"}
    # ffmpeg (site) or gstreamer (camera) came from it: its installed version is the repository's.
    package = "ffmpeg" if host.backend.name == "mol-rec-site" else "gstreamer1.0-plugins-good"
    policy = host.check_output(f"apt-cache policy {package}")
    assert "file:/var/lib/cllmh/apt" in policy.split("***", 1)[1].split("\n", 2)[1]
