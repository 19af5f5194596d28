"""The air-gap checks of the scenarios that converge cut off from the outside (README, "Air-gapped
sites"): their Docker network is internal, no host reaches Debian's archive or PyPI, and apt reads only
the artifact directory's repository, which the roles' packages came from. One implementation, used by
each such scenario's tests/test_airgap.py (motion_recorder: a site; syslog_ng: head office)."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

# What the roles would otherwise download from: Debian's archive and PyPI.
OUTSIDE = [("deb.debian.org", 80), ("pypi.org", 443), ("files.pythonhosted.org", 443)]
# The same check with an address, so that a missing DNS answer alone cannot make it pass
# (151.101.0.223: one of PyPI's Fastly addresses; any public address would do).
OUTSIDE_ADDRESSES = [("151.101.0.223", 443)]

# apt_source unpacks the artifact directory's repository here (roles/apt_source/defaults/main.yml).
LOCAL_REPOSITORY = "file:/var/lib/cllmh/apt"

# Tries every HOST:PORT of argv[1:] at once (each within 5 s) and prints those a TCP connection opened
# to: one run per host, so that the check costs one timeout, not one per destination.
PROBE = """
import socket, sys
from concurrent.futures import ThreadPoolExecutor
def opens(target):
    name, port = target.rsplit(":", 1)
    try:
        socket.create_connection((name, int(port)), timeout=5).close()
        return target
    except OSError:
        return None
with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    print(" ".join(t for t in pool.map(opens, sys.argv[1:]) if t))
"""


def network_is_internal(name: str) -> bool:
    """Docker's `Internal` setting of the network `name`. Docker still gives the hosts a default route
    to the bridge's address, but drops what an internal network's bridge would forward."""
    out = subprocess.run(
        ["docker", "network", "inspect", "--format", "{{.Internal}}", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out == "true"


def reachable_outside(hosts: list) -> dict[str, list[str]]:
    """For each of `hosts` (testinfra), the destinations of OUTSIDE and OUTSIDE_ADDRESSES it opens a
    connection to (an empty list: none). The hosts are probed at once: a name that does not resolve
    on an internal network costs the resolver's timeouts (about 10 s) on each host."""
    targets = [f"{name}:{port}" for name, port in OUTSIDE + OUTSIDE_ADDRESSES]
    command = "python3 -c %s " + " ".join(["%s"] * len(targets))

    def probe(host) -> list[str]:
        return host.check_output(command, PROBE, *targets).split()

    with ThreadPoolExecutor(len(hosts)) as pool:
        return dict(zip((h.backend.name for h in hosts), pool.map(probe, hosts), strict=True))


def apt_sites(host) -> set[str]:
    """Where every index apt would read on `host` comes from (apt-get indextargets)."""
    return set(host.check_output("apt-get indextargets --format '$(SITE)'").split())


def installed_from(host, package: str) -> str:
    """The sources apt lists for the installed version of `package` on `host` (apt-cache policy: the
    line after the one marked ***), e.g. `500 file:/var/lib/cllmh/apt  Packages`."""
    policy = host.check_output("apt-cache policy %s", package)
    assert "***" in policy, f"{package} is not installed: {policy}"
    return policy.split("***", 1)[1].split("\n", 2)[1].strip()
