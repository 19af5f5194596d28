"""The one line the status page writes for every refused login, for fail2ban (issue 14).

    login failed address=203.0.113.7 reason=wrong-password user="budi"
    login failed address=203.0.113.7 reason=rate-limited user="budi"

The address is the client's as nginx saw it (`X-Real-IP`, which nginx sets, see `auth.client_address`)
and always comes before anything the client typed: the user name is written last, JSON-quoted (no
newline, no unescaped quote), so a crafted name cannot forge another address into the line. The
hardening role's `cllmh-status` jail (playbooks/group_vars/cctv_sites/fail2ban.yml) reads these lines
from the journal (the unit's stderr) and bans the address from HTTP and HTTPS."""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
from typing import Literal

LOGGER = logging.getLogger("cllmh.status.login")
PREFIX = "login failed"
Reason = Literal["wrong-password", "rate-limited"]


def setup() -> None:
    """The page's own lines (`cllmh.status` and below: these, and who marked which event "keep") go
    to stderr (the journal under systemd), bare and once, whatever the server's logging does."""
    parent = logging.getLogger("cllmh.status")
    if not any(getattr(h, "cllmh_status", False) for h in parent.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.cllmh_status = True  # type: ignore[attr-defined]
        parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False


def line(address: str, reason: Reason, user: str) -> str:
    try:
        shown = str(ipaddress.ip_address(address))
    except ValueError:
        shown = "unknown"  # never what the client sent: a ban needs an address
    return f"{PREFIX} address={shown} reason={reason} user={json.dumps(user[:64])}"


def refused(address: str, reason: Reason, user: str) -> None:
    LOGGER.warning(line(address, reason, user))
