"""The status page's login on the web edge, seen from another host (mol-nginx-viewer): gunicorn is only
on its unix socket, and wrong passwords get the client's address banned from HTTP(S) by fail2ban's
cllmh-status jail (hardening role; playbooks/group_vars/cctv_sites/fail2ban.yml) reading the line
the page writes for every refused login, with the address nginx saw, never the one a client forges."""

from __future__ import annotations

import re

import pytest
import testinfra
from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-nginx-site"]

SITE = "mol-nginx-site"
JAIL = "cllmh-status"
MAXRETRY = 5  # hardening_fail2ban_maxretry's default
FORGED = "192.0.2.66"
# A wrong-password login as a browser does it: the login form for the CSRF token and cookie, then
# the POST, with headers forging another client address.
WRONG_LOGIN = (
    "rm -f /tmp/jar && curl -sk -c /tmp/jar -b /tmp/jar https://{site}/login -o /tmp/login.html && "
    'token=$(sed -n \'s/.*name="csrf_token" value="\\([^"]*\\)".*/\\1/p\' /tmp/login.html | head -1) && '
    "curl -sk -c /tmp/jar -b /tmp/jar -o /dev/null -w '%{{http_code}}' "
    "-H 'X-Real-IP: {forged}' -H 'X-Forwarded-For: {forged}' "
    "--data-urlencode username=teknisi --data-urlencode password=salah-{n} "
    "--data-urlencode csrf_token=$token https://{site}/login"
)


@pytest.fixture(scope="module")
def viewer():
    return testinfra.get_host("docker://mol-nginx-viewer")


def address_of(machine) -> str:
    return machine.check_output("hostname -I").split()[0]


def banned(host) -> str:
    return host.check_output(f"fail2ban-client status {JAIL}")


def test_the_status_page_listens_only_on_its_unix_socket(host):
    tcp = host.check_output("ss -Hltnp")
    assert "gunicorn" not in tcp and "python" not in tcp, tcp
    assert "/run/cllmh-status/status.sock" in host.check_output("ss -Hlxp")


def test_wrong_passwords_ban_the_viewer_from_https_while_another_address_still_logs_in(host, viewer):
    me = address_of(viewer)
    # A second client: another address of the same network on the viewer's interface.
    other = re.sub(r"\.\d+$", ".250", me)
    assert me not in banned(host)
    since = host.check_output("date +%s")
    try:
        codes = [
            viewer.check_output(WRONG_LOGIN.format(site=SITE, forged=FORGED, n=n)) for n in range(MAXRETRY)
        ]
        assert codes == ["401"] * MAXRETRY, codes
        assert wait_for(lambda: me in banned(host), timeout=60), banned(host)
        print(banned(host))
        # 443 no longer answers the viewer (fail2ban's nftables reject), HTTP neither.
        for url in (f"https://{SITE}/login", f"http://{SITE}/"):  # 80 answers a redirect when not banned
            refused = viewer.run(f"curl -sk --connect-timeout 5 -o /dev/null {url}")
            assert refused.rc != 0, (url, refused.stdout)
        viewer.check_output(f"ip addr add {other}/32 dev eth0")
        page = viewer.check_output(f"curl -sk --interface {other} https://{SITE}/login")
        assert 'name="csrf_token"' in page
        # The page logged the address nginx saw, never the forged headers; the filter matches those lines.
        lines = host.check_output(
            f"journalctl -u cllmh-status.service --since @{since} -o cat | grep 'login failed'"
        )
        print(lines)
        assert lines.count(f"login failed address={me} reason=wrong-password") == MAXRETRY, lines
        assert FORGED not in lines
        regex = host.check_output(
            f"fail2ban-regex --journalmatch=_SYSTEMD_UNIT=cllmh-status.service "
            f"'systemd-journal' /etc/fail2ban/filter.d/{JAIL}.conf"
        )
        print(regex)
        assert int(re.search(r"Failregex: (\d+) total", regex)[1]) >= MAXRETRY, regex
    finally:
        host.run(f"fail2ban-client set {JAIL} unbanip {me}")
        viewer.run(f"ip addr del {other}/32 dev eth0")
    for url in (f"https://{SITE}/login", f"http://{SITE}/"):
        assert viewer.run(f"curl -sk --connect-timeout 5 -o /dev/null {url}").rc == 0, url
