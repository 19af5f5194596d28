"""Helpers of the head-office tests (test_central.py, test_cut_link.py): the central API through
nginx with an API token, and events written at the site with the recorder's own writer."""

from __future__ import annotations

import json
import uuid

SITE = "toko-uji"
PKI = "/etc/cllmh/pki"
CLI = "runuser -u cllmh -- /opt/cllmh/venv/bin/cllmh central"
RECORDINGS = "/var/lib/cllmh/recordings"
# On the hub, through nginx: its certificate names mol-log-hub (the name the sites use), not localhost.
CURL = "curl -sS --cacert /etc/cllmh/pki/ca.crt --resolve mol-log-hub:443:127.0.0.1"
URL = "https://mol-log-hub/api/v1"


def api_token(hub) -> str:
    """An API token (for scripts: Authorization: Bearer) of a viewer of the site, made with the CLI."""
    name = f"mol-{uuid.uuid4().hex[:6]}"
    hub.check_output(
        f"CLLMH_MOL_PW=molecule-only-pw {CLI} user add {name} --role viewer --sites {SITE} "
        "--password-env CLLMH_MOL_PW"
    )
    return hub.check_output(f"{CLI} token add {name} --label molecule")


def api(hub, token: str, path: str) -> dict:
    """GET /api/v1/<path> through nginx with a token."""
    out = hub.check_output(f"{CURL} -f -H %s {URL}/%s", f"Authorization: Bearer {token}", path)
    return json.loads(out)


WRITER = (
    "import sys, time; from pathlib import Path; sys.path.insert(0, '/opt/mol-events'); "
    "from cllmh import events as ev; from eventwriter import write_event; "
    "root = Path(sys.argv[1]); "
    "print(write_event(root, ev.Index(root), camera='gerbang', start=time.time(), event_id=sys.argv[2], "
    "kind=sys.argv[3], size=200_000))"
)


def write_event(site, event_id: str, kind: str) -> str:
    """One whole event at the site through the recorder's own writer (appliance/tests/eventwriter.py
    calls cllmh.events.EventWriter), as the recorder's user; returns its directory."""
    return site.check_output(
        "runuser -u cllmh -- /opt/cllmh/venv/bin/python -c %s %s %s %s", WRITER, RECORDINGS, event_id, kind
    )


def event_path(site, event_id: str) -> str:
    return site.check_output("find %s -type d -name %s", RECORDINGS, event_id)


def snapshot(hub, token: str, event_id: str) -> str:
    """md5sum of the event's snapshot as the API serves it."""
    return hub.check_output(
        f"{CURL} -f -H %s {URL}/sites/%s/events/%s/snapshot.jpg | md5sum",
        f"Authorization: Bearer {token}",
        SITE,
        event_id,
    )
