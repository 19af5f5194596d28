"""Head office converged air-gapped: the scenario's network is internal, no host reaches Debian's
archive or PyPI, apt reads only the artifact directory's repository (head office's packages came from
there) and Loki is the artifact directory's package. The checks are molecule/lib/cllmh_airgap.py's,
shared with the site's scenario (motion_recorder)."""

from __future__ import annotations

import testinfra
from cllmh_airgap import LOCAL_REPOSITORY, apt_sites, installed_from, network_is_internal, reachable_outside

testinfra_hosts = ["docker://mol-log-hub", "docker://mol-log-site", "docker://mol-log-sender"]
NETWORK = "cllmh-mol-log"  # molecule.yml

# A package each host's roles (or, on the sender, the prepare step) installed.
INSTALLED = {
    "mol-log-hub": ["nginx-light", "syslog-ng-mod-http", "fail2ban", "python3-venv"],
    "mol-log-site": ["syslog-ng-core", "logrotate", "python3-venv"],
    "mol-log-sender": ["syslog-ng-core"],
}


def test_the_scenario_s_network_is_internal():
    assert network_is_internal(NETWORK)


def test_the_outside_is_unreachable_from_every_host():
    reachable = reachable_outside([testinfra.get_host(h) for h in testinfra_hosts])
    assert reachable == {h.removeprefix("docker://"): [] for h in testinfra_hosts}


def test_apt_reads_only_the_artifact_directory_s_repository(host):
    assert apt_sites(host) == {LOCAL_REPOSITORY}
    for package in INSTALLED[host.backend.name]:
        assert LOCAL_REPOSITORY in installed_from(host, package), package


def test_loki_is_the_artifact_directory_s_package():
    hub = testinfra.get_host("docker://mol-log-hub")
    # Installed from the checked .deb the role copied from the artifact directory: no repository has it.
    assert hub.package("loki").version == hub.check_output(
        "dpkg-deb -f /var/cache/cllmh/loki_*_amd64.deb Version"
    )
    assert installed_from(hub, "loki").endswith("/var/lib/dpkg/status")
