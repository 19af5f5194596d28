"""One cut of the site-hub link (`docker network disconnect`, 3 minutes) and what each side must do
across it. During the cut the sender sends numbered lines to the site over TCP, the site's syslog-ng
restarts once, the site keeps reporting into its outbox (heartbeats, a person event written with the
recorder's own writer), and head office's Loki is down too (the Loki outage runs in the same window,
then the hub's syslog-ng restarts before Loki comes back). One cut, several contracts: each test below
asserts one of them on what the fixture observed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass

import pytest
import testinfra
from central_client import SITE, api, api_token, event_path, snapshot, write_event
from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-log-site"]

NETWORK = "cllmh-mol-log"
HUB_IP = "172.28.77.30"
SENDER = "mol-log-sender"
CUT_S = 180  # over site_silent_minutes (1) + the tick (10 s), and over 2 minutes
LINES = 600
LOKI = "http://127.0.0.1:3100"


@dataclass
class Cut:
    total: int
    retries: int
    accepted: list[int]  # line numbers in the site's file (a line written twice appears twice)
    delivered: list[int]  # line numbers in the hub's file
    delivered_after_s: float
    loki_down_while_delivered: bool
    in_loki: list[int]
    loki_after_s: float
    offline: dict | None  # the site as the API showed it during the cut
    alert: dict | None  # the site_silent alert opened during the cut
    heartbeats: list[float]  # `created` of the outbox's pending heartbeat, sampled during the cut
    event_waiting: bool  # the cut's event was in the outbox during the cut
    online: dict | None  # the site after reconnecting
    alert_after: dict | None  # the same alert after reconnecting
    event_id: str
    events: list[dict]  # the cut's event as the API lists it, after reconnecting
    snapshot_at_hub: str
    snapshot_at_site: str
    probes: Probes


@dataclass
class Probes:
    sent: int
    arrived: list[int]
    first_after_s: float | None


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


def _numbers(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for ln in lines if (m := re.search(r"line (\d+) of", ln))]


def _grep(h, pattern: str, path: str) -> list[str]:
    out = h.run(f"zgrep -h -F -- {shlex.quote(pattern)} {path}* 2>/dev/null")
    return [line for line in out.stdout.splitlines() if line]


def _in_loki(hub, run: str) -> list[int]:
    """Numbers of the run's lines queryable in head office's Loki (each occurrence)."""
    start = time.time_ns() - 3600 * 1_000_000_000
    logql = f'{{site="{SITE}", host="{SENDER}"}} |= "cut {run} line"'
    out = hub.run(
        f"curl -sfG {LOKI}/loki/api/v1/query_range --data-urlencode {shlex.quote('query=' + logql)} "
        f"--data-urlencode limit=5000 --data-urlencode direction=forward --data-urlencode start={start}"
    )
    if out.rc != 0:
        return []
    return _numbers([v[1] for s in json.loads(out.stdout)["data"]["result"] for v in s["values"]])


def _outbox(site) -> list[dict]:
    return json.loads(site.check_output("cllmh report --outbox --config /etc/cllmh/report.yaml"))["messages"]


def _silent_alert(hub, token: str, since: float) -> dict | None:
    found = [
        a
        for a in api(hub, token, "alerts?active=all")["alerts"]
        if a["site"] == SITE and a["kind"] == "site_silent" and a["opened_at"] >= since
    ]
    return found[-1] if found else None


@pytest.fixture(scope="module")
def cut(host) -> Cut:  # noqa: PLR0915 - one scenario, observed step by step
    site = host
    hub = testinfra.get_host("docker://mol-log-hub")
    sender = testinfra.get_host(f"docker://{SENDER}")
    token = api_token(hub)

    def site_json() -> dict:
        return api(hub, token, f"sites/{SITE}")

    assert wait_for(lambda: site_json()["online"], timeout=60), "the site is not online before the cut"
    run = uuid.uuid4().hex[:10]
    event_id = f"cut-{run}"
    summary = f"/var/tmp/cut-{run}.txt"
    sender_loop = (
        f"retries=0; for i in $(seq 1 {LINES}); do "
        f"until logger -n mol-log-site -T -P 514 --rfc3164 -t cut-test -p local1.info "
        f'"cut {run} line $i of {LINES}" 2>/dev/null; do retries=$((retries+1)); sleep 0.5; done; '
        f"sleep 0.2; done; echo $retries > {summary}"
    )
    cut_at = time.time()
    hub.check_output("systemctl stop loki")
    try:
        _docker("network", "disconnect", NETWORK, "mol-log-hub")
        try:
            started = time.monotonic()
            sender.check_output("systemd-run --unit=cut-sender-%s --collect bash -c %s", run, sender_loop)
            write_event(site, event_id, "person")
            offline = wait_for(lambda: (s := site_json()) and not s["online"] and s, timeout=60)
            # The first heartbeat made after the cut: on the air-gapped network each try to reach the
            # cut-off hub waits about 10 s for a name lookup that nobody answers (as a site whose uplink
            # is down), so the reporter makes one every ~12 s and the outbox may be empty for a moment.
            heartbeats = wait_for(
                lambda: [b["created"] for b in _outbox(site) if b["kind"] == "heartbeat"], timeout=30
            )
            time.sleep(max(0.0, 60 - (time.monotonic() - started)))
            site.check_output("systemctl restart syslog-ng")
            alert = wait_for(lambda: _silent_alert(hub, token, cut_at), timeout=CUT_S - 70)
            waiting = _outbox(site)
            heartbeats += [b["created"] for b in waiting if b["kind"] == "heartbeat"]
            event_waiting = any(m["kind"] == "event" and m["ref"] == f"gerbang/{event_id}" for m in waiting)
            finished = wait_for(
                lambda: sender.run("systemctl is-active cut-sender-%s", run).rc != 0, timeout=900
            )
            assert finished, "the sender did not finish"
            time.sleep(max(0.0, CUT_S - (time.monotonic() - started)))
        finally:
            _docker("network", "connect", "--ip", HUB_IP, NETWORK, "mol-log-hub")
        reconnected, reconnected_at = time.monotonic(), time.time()
        retries = int(sender.check_output("cat %s", summary) or 0)
        accepted = _numbers(_grep(site, f"cut {run} line", "/var/log/cctv/mol-log-sender/messages.log"))
        hub_file = f"/var/log/cctv/{SITE}/{SENDER}/messages.log"

        def delivered() -> list[int]:
            return _numbers(_grep(hub, f"cut {run} line", hub_file))

        wait_for(lambda: set(accepted) <= set(delivered()), timeout=600, interval=5)
        numbers, delivered_after = delivered(), time.monotonic() - reconnected
        loki_down = hub.run("systemctl is-active loki").stdout.strip() != "active"
        # The Loki outage's own contract: lines that reached the hub while Loki was down survive a
        # restart of the hub's syslog-ng (its disk buffer) and reach Loki once Loki is back.
        hub.check_output("systemctl restart syslog-ng")
        probes = _probe_after_hub_restart(sender, hub, run, hub_file)
    finally:
        hub.check_output("systemctl start loki")
    loki_back = time.monotonic()
    want = set(numbers)
    in_loki = wait_for(
        lambda: (got := _in_loki(hub, run)) and want <= set(got) and got, timeout=300, interval=5
    )
    in_loki = in_loki or _in_loki(hub, run)
    loki_after = time.monotonic() - loki_back
    online = wait_for(
        lambda: (s := site_json()) and s["online"] and s["last_seen"] > reconnected_at and s, timeout=60
    )
    alert_after = (
        wait_for(
            lambda: (a := _silent_alert(hub, token, cut_at)) and a["closed_at"] and a,
            timeout=60,
        )
        if alert
        else None
    )
    wanted = f"gerbang/{event_id}"
    events = wait_for(
        lambda: [e for e in api(hub, token, f"events?site={SITE}&limit=1000")["events"] if e["id"] == wanted],
        timeout=60,
    )
    return Cut(
        total=LINES,
        retries=retries,
        accepted=accepted,
        delivered=numbers,
        delivered_after_s=delivered_after,
        loki_down_while_delivered=loki_down,
        in_loki=in_loki,
        loki_after_s=loki_after,
        offline=offline or None,
        alert=alert,
        heartbeats=heartbeats,
        event_waiting=event_waiting,
        online=online or None,
        alert_after=alert_after or None,
        event_id=wanted,
        events=events,
        snapshot_at_hub=snapshot(hub, token, wanted) if events else "",
        snapshot_at_site=site.check_output("md5sum < %s/snapshot.jpg", event_path(site, event_id)),
        probes=probes,
    )


def _probe_after_hub_restart(sender, hub, run: str, hub_file: str) -> Probes:
    """After the hub's syslog-ng restarts, numbered probes go sender -> site -> hub every 2 s until one
    arrives; then the stragglers get 30 s. A site writes into its old TLS connection until it notices
    the hub closed it, and plain syslog over TCP/TLS has no acknowledgement from the receiver (RFC 5425;
    syslog-ng 3.38 OSE has no application-level acks), so what it wrote there is lost: counted here."""
    sent, first_at, started = 0, None, time.monotonic()
    while time.monotonic() - started < 240:
        sent += 1
        sender.check_output(
            "logger -n mol-log-site -T -P 514 --rfc3164 -t cut-probe -p local1.info %s",
            f"probe {run} line {sent} of restart",
        )
        time.sleep(2)
        if _numbers(_grep(hub, f"probe {run} line", hub_file)):
            first_at = time.monotonic() - started
            break
    time.sleep(30 if first_at is not None else 0)
    return Probes(sent, sorted(set(_numbers(_grep(hub, f"probe {run} line", hub_file)))), first_at)


def test_every_line_the_site_accepted_reaches_the_hub_once_across_the_cut_and_a_restart(cut):
    """The forwarding path's contract: every line the site accepted (wrote to its file) reaches the
    hub, none twice. A connection the restarting site refuses is the sender's to retry, as an NVR
    with a spool does: the sender retries each refused line until accepted and counts the retries."""
    accepted = set(cut.accepted)
    missing = sorted(accepted - set(cut.delivered))
    never_written = sorted(set(range(1, cut.total + 1)) - accepted)
    duplicates = len(cut.delivered) - len(set(cut.delivered))
    print(
        f"cut test: {cut.total} lines sent, {cut.retries} refused connections retried by the sender, "
        f"{len(accepted)} accepted by the site ({len(cut.accepted) - len(accepted)} written twice), "
        f"not in the site's file although logger succeeded: {never_written[:20]}; "
        f"at the hub {len(set(cut.delivered))} distinct {cut.delivered_after_s:.0f} s after reconnect, "
        f"{duplicates} duplicates, accepted but missing: {missing[:20]}"
    )
    # Lines before and after the restart were accepted: the test exercised the restart.
    assert {1, cut.total} <= accepted, (min(accepted, default=None), max(accepted, default=None))
    assert not missing, f"{len(missing)} lines the site accepted never reached the hub: {missing[:20]}"
    assert duplicates == 0, f"{duplicates} lines reached the hub twice"


def test_lines_reaching_the_hub_while_loki_is_down_reach_loki_once_after_a_hub_restart(cut):
    distinct = set(cut.in_loki)
    print(
        f"Loki outage of {CUT_S} s + {cut.delivered_after_s:.0f} s with a hub restart: "
        f"{len(distinct & set(cut.delivered))}/{len(set(cut.delivered))} lines queryable "
        f"{cut.loki_after_s:.0f} s after Loki started, {len(cut.in_loki) - len(distinct)} twice"
    )
    assert cut.loki_down_while_delivered, "Loki was up when the lines reached the hub: no outage tested"
    assert set(cut.delivered) <= distinct
    assert len(cut.in_loki) == len(distinct), "lines reached Loki twice"


def test_head_office_shows_the_cut_site_offline_and_opens_a_site_silent_alert(cut):
    print(f"during the cut: site {cut.offline}; alert {cut.alert}")
    assert cut.offline and cut.offline["state"] == "offline" and cut.offline["offline_since"], cut.offline
    assert cut.alert and cut.alert["status"] == "open", cut.alert
    assert cut.alert["title"] == "Site silent / Lokasi tidak melapor"
    # The dashboard words it from the catalogue: ids and values, the time its heartbeats stopped.
    assert cut.alert["title_id"] == "alert.site_silent"
    assert cut.alert["message"]["id"] == "alert.site_silent.detail"
    assert set(cut.alert["message"]["values"]) == {"since"}, cut.alert


def test_the_cut_site_keeps_producing_heartbeats_and_keeps_its_event_in_the_outbox(cut):
    assert len(cut.heartbeats) == 2 and cut.heartbeats[1] > cut.heartbeats[0], cut.heartbeats
    assert cut.event_waiting, "the event written during the cut was not waiting in the outbox"


def test_after_reconnecting_the_site_is_online_and_the_alert_closes_itself(cut):
    print(f"after the cut: site {cut.online}; alert {cut.alert_after}")
    assert cut.online and cut.online["state"] == "online", cut.online
    assert cut.alert_after and cut.alert_after["id"] == cut.alert["id"], cut.alert_after
    assert cut.alert_after["status"] == "closed" and not cut.alert_after["acked_at"], cut.alert_after


def test_the_event_written_during_the_cut_arrives_once_with_its_snapshot(cut):
    assert len(cut.events) == 1, cut.events
    (event,) = cut.events
    assert event["labels"] == {"person": 0.95} and event["has_snapshot"], event
    assert cut.snapshot_at_hub == cut.snapshot_at_site


def test_after_a_hub_restart_the_forwarding_path_comes_back(cut):
    """A restarted hub is reached again (lines sent after the restart arrive); how many of the first
    probes were lost in the old connection is printed, a known limit of plain syslog over TLS."""
    p = cut.probes
    lost = sorted(set(range(1, p.sent + 1)) - set(p.arrived))
    print(
        f"hub restart: {p.sent} probes sent, first arrived after {p.first_after_s} s, "
        f"{len(p.arrived)} arrived, lost in the old connection: {lost}"
    )
    assert p.arrived, f"no probe reached the restarted hub in 240 s ({p.sent} sent)"
