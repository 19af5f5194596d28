"""Site syslog with real senders: formats, per-host files, TLS forwarding, a flood (the cut link:
test_cut_link.py)."""

from __future__ import annotations

import json
import re
import shlex
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
    """Lines of `path` (a glob of our own log paths) and of its rotated copies that contain `pattern`."""
    out = host.run(f"zgrep -h -F -- {shlex.quote(pattern)} {path}* 2>/dev/null")
    return [line for line in out.stdout.splitlines() if line]


def site_file(host_dir: str, name: str = "messages.log") -> str:
    return f"/var/log/cctv/{host_dir}/{name}"


def hub_file(host_dir: str, name: str = "messages.log") -> str:
    return f"/var/log/cctv/{SITE_NAME}/{host_dir}/{name}"


def tag() -> str:
    return uuid.uuid4().hex[:10]


def in_loki(hub, marker: str) -> list[dict]:
    """Label sets of the streams in head office's Loki that hold a line containing `marker` (the hub
    pushes every line it receives; Loki listens on the hub's loopback)."""
    out = hub.run(
        "curl -sfG http://127.0.0.1:3100/loki/api/v1/query_range"
        " --data-urlencode %s --data-urlencode since=1h",
        f'query={{site="{SITE_NAME}"}} |= "{marker}"',  # not the hub's own journal (Loki logs queries)
    )
    return [stream["stream"] for stream in json.loads(out.stdout)["data"]["result"]] if out.rc == 0 else []


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
    lines = wait_for(lambda: grep(host, marker, site_file(SENDER)), timeout=60)
    assert lines, f"{marker} not in {site_file(SENDER)}"
    assert re.search(r" mol-log-sender local0\.warning hikvision-nvr(\[\d+\])?: HDD 2 error ", lines[0]), (
        lines[0]
    )
    assert wait_for(lambda: grep(hub, marker, hub_file(SENDER)), timeout=120), "not forwarded to the hub"
    (labels,) = wait_for(lambda: in_loki(hub, marker), timeout=120)
    assert labels == {
        "site": SITE_NAME,
        "host": SENDER,
        "severity": "warning",
        "facility": "local0",
        "program": "hikvision-nvr",
    }


def test_errors_also_go_to_important_log(host, sender):
    marker = f"err-{tag()}"
    sender.check_output(
        f"logger -n mol-log-site -d -P 514 --rfc3164 -t dvr -p daemon.err 'fan failure {marker}'"
    )
    assert wait_for(lambda: grep(host, marker, site_file(SENDER, "important.log")), timeout=60)
    info = f"info-{tag()}"
    sender.check_output(f"logger -n mol-log-site -d -P 514 --rfc3164 -t dvr -p daemon.info 'motion {info}'")
    assert wait_for(lambda: grep(host, info, site_file(SENDER)), timeout=60)
    assert not grep(host, info, site_file(SENDER, "important.log"))


# RouterOS's formats, as the bytes a router sends (one UDP datagram each; {m} is the test's marker).
# Sources: [manual] MikroTik's manual, Log, "Send the log to a syslog server" and "Technical details:
# Message formats" (https://manual.mikrotik.com/docs/diagnostics-monitoring-and-troubleshooting/log,
# RouterOS 7: remote-log-format default / syslog / cef, add-topics-string); [wiki] wiki.mikrotik.com
# Manual:System/Log (RouterOS v3 to v6, /log print lines); [sc4s] splunk/splunk-connect-for-syslog
# issue 1272 (tcpdump of a RouterOS 6 router with bsd-syslog=yes); [graylog] Graylog2/graylog2-server
# issue 8056 (RouterOS 6 without bsd-syslog, a rule prefix in front of the message); [h3] the shapes
# reported in this change's issue that no MikroTik document shows (kept: the parser must not lose
# their topic if a router or a relay sends them).
# Each case: line, host directory, facility.severity, topic ("" when the line has none), message.
ROUTEROS_CASES = {
    # [manual] remote-log-format=default (bsd-syslog=no): topics and message, no PRI, time or host.
    "default-no-pri": (
        "system,error,critical login failure for user guest from 192.168.88.17 via ssh {m}",
        "172.28.77.10",
        "user.crit",
        "system,error,critical",
        "login failure for user guest from 192.168.88.17 via ssh {m}",
    ),
    # [wiki] firewall line of /log print, sent in the default format with a PRI (kept from before).
    "default-firewall": (
        "<30>firewall,info input: in:ether1 out:(none), src-mac 00:21:29:6d:82:07, proto UDP, "
        "10.1.101.1:520->10.1.101.255:520, len 452 {m}",
        "172.28.77.10",
        "daemon.info",
        "firewall,info",
        "input: in:ether1 out:(none), src-mac 00:21:29:6d:82:07, proto UDP, "
        "10.1.101.1:520->10.1.101.255:520, len 452 {m}",
    ),
    # [graylog] RouterOS 6, bsd-syslog=no, rule prefix "mk_MDZi" in front of the message.
    "default-rule-prefix": (
        "<30>system,info,account mk_MDZi: user example logged out from 200.12.34.56 via winbox {m}",
        "172.28.77.10",
        "daemon.info",
        "system,info,account",
        "mk_MDZi: user example logged out from 200.12.34.56 via winbox {m}",
    ),
    # [h3] a BSD time stamp, then the topics, no host name: RFC 3164 parsers take the topics as HOST.
    "time-no-host": (
        "<30>Nov 26 10:00:01 system,info,account user admin logged in from 10.0.0.5 via winbox {m}",
        "172.28.77.10",
        "daemon.info",
        "system,info,account",
        "user admin logged in from 10.0.0.5 via winbox {m}",
    ),
    # [h3] the same with two topics (dhcp,info) and the lease message of /log print [wiki].
    "time-no-host-dhcp": (
        "<30>Nov 26 10:00:01 dhcp,info dhcp1 assigned 192.168.88.254 to 00:0C:29:AA:BB:CC {m}",
        "172.28.77.10",
        "daemon.info",
        "dhcp,info",
        "dhcp1 assigned 192.168.88.254 to 00:0C:29:AA:BB:CC {m}",
    ),
    # [manual] remote-log-format=syslog (bsd-syslog=yes) with add-topics-string=yes: the topics in
    # front of the message, where RFC 3164 has its program (kept from before).
    "syslog-topics": (
        "<28>Nov 25 10:00:00 RB4011-Gudang system,error,critical login failure for user admin {m}",
        "RB4011-Gudang",
        "daemon.crit",
        "system,error,critical",
        "login failure for user admin {m}",
    ),
    # [manual] the same with syslog-time-format=iso8601.
    "syslog-topics-iso8601": (
        "<30>2026-10-02T17:36:35+07:00 MikroTik system,info,account user admin logged in via winbox {m}",
        "MikroTik",
        "daemon.info",
        "system,info,account",
        "user admin logged in via winbox {m}",
    ),
    # [h3] an empty program field in front of the topics.
    "syslog-empty-program": (
        "<30>Nov 26 10:00:01 router1 : system,info device changed by admin {m}",
        "router1",
        "daemon.info",
        "system,info",
        "device changed by admin {m}",
    ),
    # [manual] remote-log-format=syslog without add-topics-string: no topics on the wire, no tag
    # either ("the message follows the identity"); the severity is the PRI's (<27>: daemon.err).
    "syslog-no-topics": (
        "<27>Oct  2 17:36:35 MikroTik login failure for user guest from 192.168.88.17 via ssh {m}",
        "MikroTik",
        "daemon.err",
        "",
        "login failure for user guest from 192.168.88.17 via ssh {m}",
    ),
    # [sc4s] RouterOS 6, bsd-syslog=yes, a firewall rule's log-prefix ("drop !LAN") in front.
    "syslog-no-topics-firewall": (
        "<30>Sep 25 01:37:18 MikroTik drop !LAN input: in:pppoe out:(unknown 0), proto TCP (SYN), "
        "137.124.88.7:43836->137.124.88.8:51104, len 44 {m}",
        "MikroTik",
        "daemon.info",
        "",
        "drop !LAN input: in:pppoe out:(unknown 0), proto TCP (SYN), "
        "137.124.88.7:43836->137.124.88.8:51104, len 44 {m}",
    ),
    # [manual] remote-log-format=cef (RouterOS 7.18+): no PRI; the topics are the CEF header's 6th field.
    "cef": (
        "Oct  2 17:36:35 MikroTik CEF:0|MikroTik|hAP ax^2|7.25beta5|10|system,error,critical|High|"
        "dvchost=MikroTik dvc=192.168.88.36 msg=login failure for user guest from 192.168.88.17 via ssh "
        "app=ssh duser=guest outcome=failure src=192.168.88.17 {m}",
        "MikroTik",
        "user.crit",
        "system,error,critical",
        "CEF:0|MikroTik|hAP ax^2|7.25beta5|10|system,error,critical|High|dvchost=MikroTik",
    ),
    # [h3] RFC 5424 with the topics at the start of MSG. MikroTik's manual says RouterOS sends no
    # RFC 5424 ("RFC 5424 is not supported"); a relay in between (rsyslog, syslog-ng) can.
    "rfc5424": (
        "<30>1 2026-11-26T10:00:01+07:00 router1 - - - - system,info,account user admin logged in {m}",
        "router1",
        "daemon.info",
        "system,info,account",
        "user admin logged in {m}",
    ),
}


def send_udp(sender, line: str) -> None:
    """Send `line` as one datagram, byte for byte (no newline, no header added), as a router does."""
    sender.check_output(
        "python3 -c %s %s",
        "import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        ".sendto(bytes.fromhex(sys.argv[1]), ('mol-log-site', 514))",
        line.encode().hex(),
    )


@pytest.mark.parametrize("case", ROUTEROS_CASES)
def test_routeros_lines_get_host_topic_severity_and_message(host, hub, sender, case):
    line, host_dir, severity, topic, message = ROUTEROS_CASES[case]
    marker = f"ros-{case}-{tag()}"
    send_udp(sender, line.format(m=marker))
    program = f"routeros topic={topic}" if topic else ""
    expected = f" {host_dir} {severity} {program}: {message.format(m=marker)}"
    lines = wait_for(lambda: grep(host, marker, site_file(host_dir)), timeout=60)
    assert lines, f"{marker} not in {site_file(host_dir)}: " + "".join(
        grep(host, marker, "/var/log/cctv/*/*.log")
    )
    assert expected in lines[0], lines[0]
    forwarded = wait_for(lambda: grep(hub, marker, hub_file(host_dir)), timeout=120)
    assert forwarded, f"{marker} not at the hub in {hub_file(host_dir)}"
    assert expected in forwarded[0], forwarded[0]
    important = grep(host, marker, site_file(host_dir, "important.log"))
    assert bool(important) == (severity.split(".")[1] in {"emerg", "alert", "crit", "err"}), important
    (labels,) = wait_for(lambda: in_loki(hub, marker), timeout=120)
    expected_labels = (SITE_NAME, host_dir, severity.split(".")[1])
    assert (labels["site"], labels["host"], labels["severity"]) == expected_labels, labels
    assert labels.get("topic", "") == topic.split(",")[0], labels  # the topic family: a bounded label


def test_the_box_s_own_journal_is_kept_and_forwarded(host, hub):
    marker = f"own-{tag()}"
    host.check_output(f"logger -t cllmh-guard -p user.notice 'freed 3 GiB {marker}'")
    assert wait_for(lambda: grep(host, marker, site_file("mol-log-site")), timeout=60)
    assert wait_for(lambda: grep(hub, marker, hub_file("mol-log-site")), timeout=120)
    (labels,) = wait_for(lambda: in_loki(hub, marker), timeout=120)
    assert labels == {
        "site": SITE_NAME,
        "host": "mol-log-site",
        "severity": "notice",
        "facility": "user",
        "program": "cllmh-guard",
    }


def test_a_host_name_cannot_escape_the_log_directory(host, sender):
    marker = tag()
    sender.check_output(
        "bash -c %s", f"echo '<14>Nov 25 10:00:00 .. evil: {marker}' > /dev/udp/mol-log-site/514"
    )
    assert wait_for(lambda: grep(host, marker, site_file("172.28.77.10")), timeout=60)
    assert not host.file("/var/log/messages.log").exists


def test_forwarding_is_tls_to_the_hub(host):
    conns = host.check_output("ss -tnp state established '( dport = :6514 )'")
    assert f"{HUB_IP}:6514" in conns and "syslog-ng" in conns


def _flood_keys(h, files: str) -> tuple[int, int, str]:
    """(lines, distinct lines, digest of the distinct set) of loggen's lines in `files` and their
    rotated copies; a loggen line is keyed by its sequence number, thread and run id."""
    out = h.check_output(
        f"zcat -f {files}* 2>/dev/null | grep -o 'seq: [0-9]*, thread: [0-9]*, runid: [0-9]*' "
        "| sort > /var/tmp/flood-keys; wc -l < /var/tmp/flood-keys; sort -u /var/tmp/flood-keys | wc -l; "
        "sort -u /var/tmp/flood-keys | md5sum | cut -c1-32"
    )
    lines, distinct, digest = out.split()
    return int(lines), int(distinct), digest


def _settled(check, quiet: float = 10.0, timeout: float = 600.0):
    """Poll `check` until its value has not changed for `quiet` seconds; return the value."""
    last, since, deadline = check(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(2)
        now = check()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def test_a_flood_of_20000_lines_per_second_is_survived_and_every_accepted_line_forwarded(host, hub, sender):
    pid_before = host.check_output("systemctl show -p MainPID --value syslog-ng")
    out = sender.run(
        "loggen --inet --dgram --rate 20000 --interval 30 --size 200 --active-connections 1 "
        "mol-log-site 514 2>&1 | tail -3"
    )
    assert host.service("syslog-ng").is_running
    assert host.check_output("systemctl show -p MainPID --value syslog-ng") == pid_before, (
        "syslog-ng restarted"
    )
    site_files, hub_files = "/var/log/cctv/*/messages.log", f"/var/log/cctv/{SITE_NAME}/*/messages.log"
    # UDP: datagrams the site could not take are dropped by the kernel (counted below as receive-buffer
    # errors), not asserted. The site's count is read once its writing has stopped, then the hub
    # must have exactly those lines, each once.
    started = time.monotonic()
    site_lines, accepted, site_digest = _settled(lambda: _flood_keys(host, site_files))
    wait_for(lambda: _flood_keys(hub, hub_files)[1] >= accepted, timeout=600, interval=5)
    hub_lines, delivered, hub_digest = _settled(lambda: _flood_keys(hub, hub_files))
    dropped = host.run("syslog-ng-ctl stats | grep -E 'd_head_office.*dropped' || true").stdout
    udp = host.check_output("grep '^Udp:' /proc/net/snmp").splitlines()
    kernel = dict(zip(udp[0].split()[1:], udp[1].split()[1:], strict=True)) if len(udp) == 2 else {}
    print(
        f"flood: loggen said: {out.stdout.strip()!r}; accepted by the site {accepted} "
        f"({site_lines - accepted} written twice), delivered to the hub {delivered} distinct in "
        f"{time.monotonic() - started:.0f} s ({hub_lines - delivered} duplicates); UDP receive-buffer "
        f"errors on the site: {kernel.get('RcvbufErrors')}; forwarding: {dropped.strip()!r}"
    )
    assert accepted > 0
    assert delivered == accepted and hub_digest == site_digest, "the hub's lines differ from the site's"
    assert hub_lines == delivered, f"{hub_lines - delivered} lines reached the hub twice"
