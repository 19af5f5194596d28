#!/usr/bin/env python3
"""Hub -> Loki throughput: lines a site sends over TLS until they are queryable with LogQL.

Runs against the container of the loki Molecule scenario (`make bench-loki` converges it
first). sender.py (the scenario's site stand-in, inside the container) sends --lines numbered
lines over one TLS connection as fast as it can; the script polls the hub's per-site file and a
LogQL count in Loki and prints:

- lines/s written to the hub's file (the file-only path of the same run),
- lines/s queryable in Loki (sender -> syslog-ng -> reliable disk buffer -> HTTP push -> LogQL),
- CPU seconds and peak resident memory (VmHWM) of the hub's syslog-ng, and of Loki.

Sender, hub and Loki share the machine's cores. A benchmark prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import time
import uuid

HUB = "mol-log-hub"
SENDER = "mol-log-site"  # sends with the site's own fleet certificate
SITE = "toko-uji"
FILE = f"/var/log/cctv/{SITE}/nvr-1/messages.log"
LOKI = "http://127.0.0.1:3100"
TICKS = os.sysconf("SC_CLK_TCK")


def sh(command: str, timeout: float = 900) -> str:
    done = subprocess.run(
        ["docker", "exec", HUB, "bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def pid(unit: str) -> str:
    return sh(f"systemctl show -p MainPID --value {unit}").strip()


def cpu_s(process: str) -> float:
    fields = sh(f"cat /proc/{process}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mib(process: str) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", sh(f"cat /proc/{process}/status"))
    return int(match.group(1)) / 1024 if match else float("nan")


def in_file(tag: str) -> int:
    return int(sh(f"grep -c -F {tag} {FILE} || true").strip() or 0)


def in_loki(tag: str) -> int:
    query = f'sum(count_over_time({{site="{SITE}"}} |= "{tag}" [1h]))'
    out = sh(f"curl -sfG {LOKI}/loki/api/v1/query --data-urlencode {shlex.quote('query=' + query)}")
    result = json.loads(out)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def wait_until(count, tag: str, lines: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count(tag) >= lines:
            return time.monotonic()
        time.sleep(0.2)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    tag = "bench" + uuid.uuid4().hex[:8]
    hub, loki = pid("syslog-ng"), pid("loki")
    hub_cpu, loki_cpu = cpu_s(hub), cpu_s(loki)
    start = time.monotonic()
    sender = subprocess.Popen(
        [
            "docker",
            "exec",
            SENDER,
            "python3",
            "/opt/mol-sender/sender.py",
            "--tag",
            tag,
            "--count",
            str(args.lines),
        ]
    )
    file_done = wait_until(in_file, tag, args.lines, args.timeout)
    loki_done = wait_until(in_loki, tag, args.lines, args.timeout)
    sender.wait(timeout=60)
    hub_cpu, loki_cpu = cpu_s(hub) - hub_cpu, cpu_s(loki) - loki_cpu
    file_s, loki_s = file_done - start, loki_done - start

    print(f"lines sent over TLS: {args.lines}")
    print(f"hub file (file-only path): {args.lines / file_s:8.0f} lines/s ({file_s:.1f} s)")
    print(f"queryable in Loki (LogQL count): {args.lines / loki_s:8.0f} lines/s ({loki_s:.1f} s)")
    print(f"Loki / file: {file_s / loki_s:8.2f}")
    print(f"hub syslog-ng CPU: {hub_cpu:8.1f} s ({100 * hub_cpu / loki_s:.0f} % of one core)")
    print(f"hub syslog-ng peak RSS: {peak_rss_mib(hub):8.1f} MiB")
    print(f"Loki CPU: {loki_cpu:8.1f} s ({100 * loki_cpu / loki_s:.0f} % of one core)")
    print(f"Loki peak RSS: {peak_rss_mib(loki):8.1f} MiB")


if __name__ == "__main__":
    main()
