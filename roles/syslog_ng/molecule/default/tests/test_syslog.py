"""Site syslog with real senders: formats, per-host files, TLS forwarding, a cut link, a flood."""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest
import testinfra
from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-log-site"]

NETWORK = "cllmh-mol-log"
HUB_IP = "172.28.77.30"
SITE_NAME = "toko-uji"
SENDER = "mol-log-sender"


@pytest.fixture(scope="module")
def sender():
    return testinfra.get_host("docker://mol-log-sender")


@pytest.fixture(scope="module")
def hub():
    return testinfra.get_host("docker://mol-log-hub")


def grep(host, pattern: str, path: str) -> list[str]:
    out = host.run("grep -h -- %s %s 2>/dev/null", pattern, path)
    return [line for line in out.stdout.splitlines() if line]


def site_file(host_dir: str, name: str = "messages.log") -> str:
    return f"/var/log/cctv/{host_dir}/{name}"


def hub_file(host_dir: str, name: str = "messages.log") -> str:
    return f"/var/log/cctv/{SITE_NAME}/{host_dir}/{name}"


def tag() -> str:
    return uuid.uuid4().hex[:10]


def test_config_passes_the_syntax_check(host, hub):
    assert host.run("syslog-ng --syntax-only").rc == 0
    assert hub.run("syslog-ng --syntax-only").rc == 0


def test_logrotate_config_is_valid(host):
    assert host.run("logrotate -d /etc/logrotate.d/cllmh-cctv").rc == 0
    assert "hourly" in host.check_output("systemctl cat logrotate.timer")


@pytest.mark.parametrize(
    ("transport", "flags", "fmt"),
    [
        ("udp", "-d -P 514", "--rfc3164"),
        ("tcp", "-T -P 514", "--rfc5424"),
        ("octet", "-T -P 601 --octet-count", "--rfc5424"),
    ],
)
def test_nvr_lines_land_in_the_per_host_file_with_their_severity(  # noqa: PLR0917 - pytest fixtures
    host, hub, sender, transport, flags, fmt
):
    marker = f"nvr-{transport}-{tag()}"
    sender.check_output(
        f"logger -n mol-log-site {flags} {fmt} -t hikvision-nvr -p local0.warning 'HDD 2 error {marker}'"
    )
    lines = wait_for(lambda: grep(host, marker, site_file(SENDER)), timeout=15)
    assert lines, f"{marker} not in {site_file(SENDER)}"
    assert re.search(r" mol-log-sender local0\.warning hikvision-nvr(\[\d+\])?: HDD 2 error ", lines[0]), (
        lines[0]
    )
    assert wait_for(lambda: grep(hub, marker, hub_file(SENDER)), timeout=30), "not forwarded to the hub"


def test_errors_also_go_to_important_log(host, sender):
    marker = f"err-{tag()}"
    sender.check_output(
        f"logger -n mol-log-site -d -P 514 --rfc3164 -t dvr -p daemon.err 'fan failure {marker}'"
    )
    assert wait_for(lambda: grep(host, marker, site_file(SENDER, "important.log")), timeout=15)
    info = f"info-{tag()}"
    sender.check_output(f"logger -n mol-log-site -d -P 514 --rfc3164 -t dvr -p daemon.info 'motion {info}'")
    assert wait_for(lambda: grep(host, info, site_file(SENDER)), timeout=15)
    assert not grep(host, info, site_file(SENDER, "important.log"))


@pytest.mark.parametrize(
    ("line", "host_dir", "severity", "topic"),
    [
        # RouterOS default remote format: no timestamp, no host name
        (
            "<30>firewall,info input: in:ether1 out:(unknown 0), proto TCP {m}",
            "172.28.77.10",
            "info",
            "firewall,info",
        ),
        # RouterOS with BSD syslog header
        (
            "<28>Nov 25 10:00:00 RB4011-Gudang system,error,critical login failure for user admin {m}",
            "RB4011-Gudang",
            "crit",
            "system,error,critical",
        ),
    ],
)
def test_mikrotik_lines_get_topic_and_severity(  # noqa: PLR0917 - pytest fixtures
    host, hub, sender, line, host_dir, severity, topic
):
    marker = tag()
    sender.check_output("bash -c %s", f"echo '{line.format(m=marker)}' > /dev/udp/mol-log-site/514")
    lines = wait_for(lambda: grep(host, marker, site_file(host_dir)), timeout=15)
    assert lines, f"{marker} not in {site_file(host_dir)}"
    assert f".{severity} routeros topic={topic}: " in lines[0], lines[0]
    forwarded = wait_for(lambda: grep(hub, marker, hub_file(host_dir)), timeout=30)
    assert forwarded and f".{severity} routeros topic={topic}: " in forwarded[0], forwarded


def test_the_box_s_own_journal_is_kept_and_forwarded(host, hub):
    marker = f"own-{tag()}"
    host.check_output(f"logger -t cllmh-guard -p user.notice 'freed 3 GiB {marker}'")
    assert wait_for(lambda: grep(host, marker, site_file("mol-log-site")), timeout=15)
    assert wait_for(lambda: grep(hub, marker, hub_file("mol-log-site")), timeout=30)


def test_a_host_name_cannot_escape_the_log_directory(host, sender):
    marker = tag()
    sender.check_output(
        "bash -c %s", f"echo '<14>Nov 25 10:00:00 .. evil: {marker}' > /dev/udp/mol-log-site/514"
    )
    assert wait_for(lambda: grep(host, marker, site_file("172.28.77.10")), timeout=15)
    assert not host.file("/var/log/messages.log").exists


def test_forwarding_is_tls_to_the_hub(host):
    conns = host.check_output("ss -tnp state established '( dport = :6514 )'")
    assert f"{HUB_IP}:6514" in conns and "syslog-ng" in conns


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


def test_nothing_is_lost_while_the_link_is_cut_and_syslog_ng_restarts(host, hub, sender):
    """Cut the hub off for 2 minutes, send N numbered lines, restart the site's syslog-ng once."""
    run, total = tag(), 600
    _docker("network", "disconnect", NETWORK, "mol-log-hub")
    try:
        started = time.monotonic()
        sender.check_output(
            "systemd-run --unit=cut-sender-%s --collect bash -c %s",
            run,
            f"for i in $(seq 1 {total}); do logger -n mol-log-site -T -P 514 --rfc3164 -t cut-test "
            f'-p local1.info "cut {run} line $i of {total}"; sleep 0.2; done',
        )
        time.sleep(60)
        host.check_output("systemctl restart syslog-ng")
        wait_for(lambda: sender.run("systemctl is-active cut-sender-%s", run).rc != 0, timeout=180)
        time.sleep(max(0.0, 125 - (time.monotonic() - started)))
    finally:
        _docker("network", "connect", "--ip", HUB_IP, NETWORK, "mol-log-hub")
    reconnected = time.monotonic()
    accepted = grep(host, f"cut {run} line", site_file(SENDER))
    assert len(accepted) == total, f"the site accepted {len(accepted)} of {total}"

    def delivered():
        return grep(hub, f"cut {run} line", hub_file(SENDER))

    wait_for(
        lambda: len({re.search(r"line (\d+) of", ln).group(1) for ln in delivered()}) >= total, timeout=180
    )
    lines = delivered()
    numbers = [int(re.search(r"line (\d+) of", ln).group(1)) for ln in lines]
    missing = sorted(set(range(1, total + 1)) - set(numbers))
    duplicates = len(numbers) - len(set(numbers))
    print(
        f"cut test: {total} sent, {len(accepted)} accepted by the site, {len(set(numbers))} distinct "
        f"delivered {time.monotonic() - reconnected:.0f} s after reconnect, {duplicates} duplicates, "
        f"missing: {missing[:20]}"
    )
    assert not missing


def test_a_flood_of_20000_lines_per_second_is_survived(host, hub, sender):
    pid_before = host.check_output("systemctl show -p MainPID --value syslog-ng")
    run = tag()
    out = sender.run(
        "loggen --inet --dgram --rate 20000 --interval 30 --size 200 --active-connections 1 "
        "mol-log-site 514 2>&1 | tail -3"
    )
    assert host.service("syslog-ng").is_running
    assert host.check_output("systemctl show -p MainPID --value syslog-ng") == pid_before, (
        "syslog-ng restarted"
    )

    def count(h, pattern: str) -> int:
        # loggen's lines (program prg00000); the glob must reach the shell unquoted.
        return int(h.check_output(f"cat {pattern} 2>/dev/null | grep -c prg0 || true") or 0)

    accepted = count(host, "/var/log/cctv/*/messages.log")
    delivered = wait_for(
        lambda: (n := count(hub, f"/var/log/cctv/{SITE_NAME}/*/messages.log")) >= accepted and n,
        timeout=240,
        interval=5,
    ) or count(hub, f"/var/log/cctv/{SITE_NAME}/*/messages.log")
    print(
        f"flood {run}: loggen said: {out.stdout.strip()!r}; accepted by the site {accepted}, "
        f"delivered to the hub {delivered}"
    )
    assert accepted > 0
    assert delivered >= accepted
