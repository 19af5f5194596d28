"""Head-office Loki with the hub pushing into it: loopback, sandbox, retention, labels (its outage runs
during the cut link, test_cut_link.py)."""

from __future__ import annotations

import json
import shlex
import time
import uuid

import testinfra
import yaml
from cllmh_verify import exposure, wait_for

testinfra_hosts = ["docker://mol-log-hub"]

LOKI = "http://127.0.0.1:3100"
SITE = "toko-uji"
SITE_HOST = testinfra.get_host("docker://mol-log-site")


def tag() -> str:
    return "t" + uuid.uuid4().hex[:10]


def send(_hub, run_tag: str, **options: str | int | bool) -> None:
    """sender.py in the site's container: numbered lines over TLS to the hub with the site's own
    fleet certificate, as its syslog-ng forwards them."""
    flags = " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {shlex.quote(str(v))}")
        for k, v in options.items()
    )
    SITE_HOST.check_output(f"python3 /opt/mol-sender/sender.py --tag {run_tag} {flags}")


def query(host, logql: str, since_s: int = 3600) -> list[dict]:
    """Streams returned by /loki/api/v1/query_range for `logql` (forward, up to 5000 lines);
    none while Loki does not answer (starting)."""
    start = time.time_ns() - since_s * 1_000_000_000
    out = host.run(
        f"curl -sfG {LOKI}/loki/api/v1/query_range --data-urlencode {shlex.quote('query=' + logql)} "
        f"--data-urlencode limit=5000 --data-urlencode direction=forward --data-urlencode start={start}"
    )
    return json.loads(out.stdout)["data"]["result"] if out.rc == 0 else []


def numbers(streams: list[dict]) -> list[int]:
    return [int(value[1].rsplit("n=", 1)[1]) for stream in streams for value in stream["values"]]


def test_loki_listens_on_loopback_only(host):
    listening = host.check_output("ss -Htlnp")
    loki_sockets = [line.split()[3] for line in listening.splitlines() if '"loki"' in line]
    assert loki_sockets, listening
    assert all(addr.startswith("127.0.0.1:") for addr in loki_sockets), loki_sockets


def test_unit_is_sandboxed_and_verifies_its_config_before_starting(host):
    show = host.check_output(
        "systemctl show loki -p ProtectSystem -p NoNewPrivileges -p User -p ExecStartPre"
    )
    assert "ProtectSystem=strict" in show
    assert "NoNewPrivileges=yes" in show
    assert "User=loki" in show
    assert "-verify-config" in show
    assert exposure(host, "loki.service") <= 3.0
    assert host.run("sudo -u loki /usr/bin/loki -config.file=/etc/loki/config.yml -verify-config").rc == 0


def test_running_loki_keeps_each_severity_as_configured(host):
    config = yaml.safe_load(host.check_output(f"curl -sf {LOKI}/config"))
    assert config["compactor"]["retention_enabled"] is True
    assert config["schema_config"]["configs"][0]["schema"] == "v13"
    assert config["schema_config"]["configs"][0]["store"] == "tsdb"
    streams = {s["selector"]: s["period"] for s in config["limits_config"]["retention_stream"]}
    # The scenario keeps debug 2 days (not the default 3): the running Loki shows what the inventory says.
    assert streams == {
        '{severity=~"alert|crit|emerg"}': "1y",
        '{severity=~"err"}': "180d",
        '{severity=~"notice|warning"}': "30d",
        '{severity=~"info"}': "2w",
        '{severity=~"debug"}': "2d",
    }
    assert config["limits_config"]["retention_period"] == "2w"


def test_numbered_lines_reach_loki_with_site_host_severity_and_mikrotik_topic(host):
    run = tag()
    send(host, run, host="nvr-1", program="hikvision-nvr", severity="warning", first=1)
    send(host, run, host="router-1", program="routeros", severity="info", topic="firewall,info", first=2)

    def both() -> list[dict]:  # two connections, two lines: wait for both, not the first one
        streams = query(host, f'{{site="{SITE}"}} |= "{run}"')
        return streams if len(numbers(streams)) >= 2 else []

    streams = wait_for(both, timeout=120) or query(host, f'{{site="{SITE}"}} |= "{run}"')
    by_number = {int(s["values"][0][1].rsplit("n=", 1)[1]): s for s in streams}
    assert sorted(by_number) == [1, 2], streams
    nvr, router = by_number[1]["stream"], by_number[2]["stream"]
    assert nvr == {
        "site": SITE,
        "host": "nvr-1",
        "severity": "warning",
        "facility": "local0",
        "program": "hikvision-nvr",
    }
    assert router["topic"] == "firewall"
    assert (router["host"], router["severity"], router["site"]) == ("router-1", "info", SITE)
    assert "topic=firewall,info" in by_number[2]["values"][0][1]
    # The hub still writes its per-site files.
    assert run in host.check_output(f"cat /var/log/cctv/{SITE}/nvr-1/messages.log")


def test_lines_with_quotes_backslashes_and_bytes_that_are_not_utf8_reach_loki(host):
    # One bad JSON body would make Loki refuse the whole batch (400), and syslog-ng drops a refused batch.
    run = tag()
    send(host, run, first=1, payload='camera "gate" path C:\\rec\\x tab\there ')
    send(host, run, first=2, invalid_utf8=True)
    send(host, run, first=3)

    def lines() -> list[str]:
        return [
            value[1] for stream in query(host, f'{{site="{SITE}"}} |= "{run}"') for value in stream["values"]
        ]

    wait_for(lambda: len(lines()) == 3, timeout=60)
    got = sorted(lines(), key=lambda line: line.rsplit("n=", 1)[1])
    assert len(got) == 3, got
    assert 'camera "gate" path C:\\rec\\x tab\there n=000001' in got[0]
