"""The scenario really is air-gapped: its network is internal, no host reaches Debian's archive or
PyPI, and apt reads only the artifact directory's repository (the roles' packages came from there).
The checks are molecule/lib/cllmh_airgap.py's, shared with the head office's scenario (syslog_ng)."""

from __future__ import annotations

import testinfra
from cllmh_airgap import LOCAL_REPOSITORY, apt_sites, installed_from, network_is_internal, reachable_outside

testinfra_hosts = ["docker://mol-rec-site", "docker://mol-rec-camera"]
NETWORK = "cllmh-mol-rec-airgap"  # molecule.yml


def test_the_scenario_s_network_is_internal():
    assert network_is_internal(NETWORK)


def test_the_outside_is_unreachable_from_every_host():
    reachable = reachable_outside([testinfra.get_host(h) for h in testinfra_hosts])
    assert reachable == {h.removeprefix("docker://"): [] for h in testinfra_hosts}


def test_apt_reads_only_the_artifact_directory_s_repository(host):
    assert apt_sites(host) == {LOCAL_REPOSITORY}
    # ffmpeg (site) or gstreamer (camera) came from it: its installed version is the repository's.
    package = "ffmpeg" if host.backend.name == "mol-rec-site" else "gstreamer1.0-plugins-good"
    assert LOCAL_REPOSITORY in installed_from(host, package)
