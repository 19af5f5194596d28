#!/usr/bin/env python3
"""Sustained syslog throughput: sender -> site (TLS + reliable disk buffer) -> head-office hub.

Runs against the containers of the syslog_ng Molecule scenario (`make bench-syslog` converges
them first). loggen on the sender streams lines over TCP to the site for --seconds; the script
then waits until the hub has every line the site accepted and prints:

- lines/s the site accepted and wrote to its own files (the peer in this run: no forwarding cost),
- lines/s delivered end to end to the hub over TLS through the disk buffer, and the ratio,
- peak resident memory (VmHWM) of syslog-ng on the site and on the hub.

A benchmark prints figures; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

SENDER, SITE, HUB = "mol-log-sender", "mol-log-site", "mol-log-hub"
SITE_FILES = "/var/log/cctv/localhost/messages.log"
HUB_FILES = "/var/log/cctv/*/localhost/messages.log"


def sh(container: str, command: str, timeout: float = 600) -> str:
    done = subprocess.run(
        ["docker", "exec", container, "bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def count(container: str, files: str) -> int:
    """loggen's lines in `files` and in their rotated copies (the site's logrotate may run meanwhile)."""
    return int(sh(container, f"zcat -f {files}* 2>/dev/null | grep -c prg0 || true").strip() or 0)


def peak_rss_mib(container: str) -> float:
    pid = sh(container, "systemctl show -p MainPID --value syslog-ng").strip()
    status = sh(container, f"cat /proc/{pid}/status")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def settle(container: str, files: str, quiet_s: float = 3.0, timeout: float = 600) -> tuple[int, float]:
    """Poll a line count until it stops growing; return it and when it last grew."""
    last, grew, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = count(container, files)
        if now != last:
            last, grew = now, time.monotonic()
        elif time.monotonic() - grew >= quiet_s:
            break
        time.sleep(0.5)
    return last, grew


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200000, help="loggen's target lines/s (upper bound)")
    parser.add_argument("--size", type=int, default=200, help="bytes per line")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()

    print("restarting syslog-ng on the site and the hub (resets peak memory)...", flush=True)
    sh(HUB, "systemctl restart syslog-ng")
    sh(SITE, "systemctl restart syslog-ng")
    time.sleep(5)
    base_site, base_hub = count(SITE, SITE_FILES), count(HUB, HUB_FILES)

    print(
        f"loggen: {args.connections} TCP connections, {args.size}-byte lines, {args.seconds} s ...",
        flush=True,
    )
    start = time.monotonic()
    loggen = sh(
        SENDER,
        f"loggen --inet --stream --rate {args.rate} --interval {args.seconds} --size {args.size} "
        f"--active-connections {args.connections} {SITE} 514 2>&1 | tail -2",
    )
    site_total, site_done = settle(SITE, SITE_FILES)
    accepted = site_total - base_site
    print(f"site accepted {accepted} lines; waiting for the hub ...", flush=True)
    deadline = time.monotonic() + 900
    while (delivered := count(HUB, HUB_FILES) - base_hub) < accepted and time.monotonic() < deadline:
        time.sleep(0.5)
    hub_done = time.monotonic()

    local_rate = accepted / (site_done - start)
    e2e_rate = delivered / (hub_done - start)
    print()
    print(f"loggen reported:           {' '.join(loggen.split())}")
    print(f"lines accepted by site:    {accepted}")
    print(f"lines delivered to hub:    {delivered} ({'all' if delivered >= accepted else 'MISSING LINES'})")
    print(f"site, local files only:    {local_rate:,.0f} lines/s")
    print(
        f"end to end (TLS + buffer): {e2e_rate:,.0f} lines/s  (ratio to local: {e2e_rate / local_rate:.2f})"
    )
    print(f"peak RSS syslog-ng site:   {peak_rss_mib(SITE):.1f} MiB")
    print(f"peak RSS syslog-ng hub:    {peak_rss_mib(HUB):.1f} MiB")


if __name__ == "__main__":
    main()
