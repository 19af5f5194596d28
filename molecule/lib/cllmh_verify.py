"""Helpers shared by the Molecule (testinfra) tests; on the verifier's PYTHONPATH (molecule/base.yml)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, interval: float = 1.0) -> T:
    """Call `check` until it returns something truthy or `timeout` seconds pass; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")


def exposure(host, unit: str) -> float:
    """`systemd-analyze security` overall exposure of `unit` on `host` (lower is better), printed."""
    out = host.check_output("systemd-analyze security --no-pager %s", unit)
    figure = float(EXPOSURE.search(out).group(1))
    print(f"systemd-analyze security {unit}: exposure {figure}")
    return figure


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login_cookie(client, base_url: str, user: str, password: str, curl: str = "curl -sk") -> str:
    """Log in to the status page at `base_url` (https://HOST[:PORT]) from `client` (a testinfra host)
    the way a browser does — GET the form (session cookie + CSRF token), POST it — and return the
    `Cookie:` header value (`cllmh_status=...`) for curl/ffprobe. Fails unless the login succeeds."""
    jar = f"/tmp/cllmh-cookies-{uuid.uuid4().hex}"
    try:
        form = client.check_output(f"{curl} -c {jar} -b {jar} {base_url}/login")
        match = CSRF.search(form)
        assert match, f"no login form at {base_url}/login: {form[:300]}"
        code = client.check_output(
            f"{curl} -o /dev/null -w '%%{{http_code}}' -c {jar} -b {jar} "
            "--data-urlencode %s --data-urlencode %s --data-urlencode %s "
            f"{base_url}/login",
            f"username={user}",
            f"password={password}",
            f"csrf_token={match.group(1)}",
        )
        assert code == "302", f"login as {user} answered {code}"
        # Netscape cookie jar: HttpOnly cookies are written as "#HttpOnly_<domain>\t...\tname\tvalue".
        for line in client.file(jar).content_string.splitlines():
            fields = line.split("\t")
            if len(fields) == 7 and fields[5] == "cllmh_status":
                return f"cllmh_status={fields[6]}"
        raise AssertionError(f"no session cookie after logging in as {user}")
    finally:
        client.run(f"rm -f {jar}")


def ffprobe_hls(client, url: str, cookie: str, timeout: int = 30) -> dict | None:
    """The first video stream of an HLS playlist read by `client`'s ffprobe with a session cookie
    (codec_name, width, height), or None when ffprobe fails. JSON, not CSV: Debian 12's ffprobe lists
    an HLS stream twice in CSV (once in its program, once as a stream)."""
    cmd = client.run(
        f"timeout {timeout} ffprobe -v error -headers %s -select_streams v:0 "
        "-show_entries stream=codec_name,width,height -of json %s",
        f"Cookie: {cookie}\r\n",
        url,
    )
    if cmd.rc != 0:
        return None
    streams = json.loads(cmd.stdout).get("streams") or [None]
    return streams[0]


def p95(samples: list[float]) -> float:
    """The 95th percentile (nearest rank) of `samples`."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(0.95 * len(ordered)) - 1))]
