"""nginx_rtmp on its own: supplied certificate, local publishing, HLS, and RTMP play tokens and
publish keys checked for a client on ANOTHER host (mol-nginx-viewer); the box itself needs neither.

Who may watch HLS over HTTPS is the status page's decision (auth_request); here it runs with no
session presented, so HLS over HTTPS is refused (401), and the HLS output is read from the disk.
Watching with a session is checked in the camera_ingest scenario; the status page's login and its
fail2ban jail seen from another host in test_status_login.py."""

from __future__ import annotations

import re
import uuid

import pytest
import testinfra
from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-nginx-site"]

NAME = "cctv.example.test"
CURL = f"curl -s --resolve {NAME}:443:127.0.0.1 --cacert /root/pki/ca.crt"
# Seen from the other host (Docker's DNS on the shared network).
REMOTE_RTMP = "rtmp://mol-nginx-site/live"
TOKEN = "Token-Putar-Lobby-0001"
WRONG_TOKEN = "Token-Putar-Lobby-9999"
VAN_KEY = "Kunci-Publikasi-Van-0001"
AUTH_LOG = "/var/log/nginx/rtmp-auth.log"
# Tells this session's attempts from those of an earlier `molecule verify` on the same instance.
RUN = uuid.uuid4().hex[:8]
PROBE = "timeout 20 ffprobe -v error -show_entries stream=codec_name -of csv=p=0"
PUBLISH = (
    "ffmpeg -v error -re -f lavfi -i testsrc2=size=320x180:rate=15 -c:v libx264 -preset ultrafast -g 15 "
    "-pix_fmt yuv420p -f flv"
)


@pytest.fixture(scope="module")
def viewer():
    """The other host: same Docker network as the site, not the site's loopback."""
    return testinfra.get_host("docker://mol-nginx-viewer")


@pytest.fixture(scope="module")
def viewer_addr(host):
    """The viewer's address as the site sees it (what nginx-rtmp passes to on_play/on_publish as addr=)."""
    addr = host.check_output("getent hosts mol-nginx-viewer").split()[0]
    assert addr != "127.0.0.1"
    return addr


def tag(attempt: str) -> str:
    """The query argument naming one remote attempt in this session."""
    return f"attempt={attempt}-{RUN}"


def decision(host, attempt: str) -> str:
    """The one on_play/on_publish request of this attempt in the site's auth log, e.g. 'GET /play?... 403'.

    Every remote attempt carries a unique `attempt=` argument, which nginx-rtmp passes on with the
    client's other arguments, so a refusal is attributed to the authorisation and not to, say, DNS.
    """
    mark = re.compile(rf"[?&]{re.escape(tag(attempt))}[& ]")
    lines = [line for line in host.file(AUTH_LOG).content_string.splitlines() if mark.search(line)]
    assert len(lines) == 1, lines
    return lines[0]


def assert_refused(host, result, attempt: str, addr: str) -> None:
    assert result.rc != 0, result.stdout
    line = decision(host, attempt)
    assert f"addr={addr}&" in line and '" 403 ' in line, line


def test_nginx_t_passes_and_the_config_is_managed(host):
    assert host.run("nginx -t").rc == 0
    assert "Ansible managed" in host.file("/etc/nginx/nginx.conf").content_string
    assert host.file("/etc/cllmh/tls/site.key").mode == 0o600


def test_the_supplied_certificate_is_served_and_verifies(host):
    # --cacert with the user's CA: the TLS handshake verifies the chain and the name (0 = verified).
    assert host.check_output(f"{CURL} -o /dev/null -w '%{{ssl_verify_result}}' https://{NAME}/") == "0"


PLAYLIST = "/var/lib/cllmh/hls/lobby/index.m3u8"


@pytest.fixture(scope="module")
def publishing(host):
    """ffmpeg on the box publishes "lobby" until the module's tests end (local publishers need no key)."""
    host.check_output(f"systemd-run --unit=test-publish --collect {PUBLISH} rtmp://127.0.0.1/live/lobby")
    wait_for(lambda: host.file(PLAYLIST).exists, timeout=30)
    yield
    host.run("systemctl stop test-publish")


def test_basic_auth_is_gone_and_hls_is_refused_without_a_session(host, publishing):
    assert not host.file("/etc/nginx/cllmh.htpasswd").exists  # the earlier versions' file is removed
    assert "auth_basic" not in host.file("/etc/nginx/nginx.conf").content_string
    code = host.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}}' -u mantan:Mantan-Pegawai-1 https://{NAME}/hls/lobby/index.m3u8"
    )
    assert code == "401", code  # the status page knows no basic auth: no session, no HLS


def test_local_publish_becomes_hls_with_short_fragments(host, publishing):
    playlist = host.file(PLAYLIST).content_string
    assert "#EXTM3U" in playlist
    durations = [
        float(line.split(":")[1].rstrip(",")) for line in playlist.splitlines() if line.startswith("#EXTINF")
    ]
    assert durations and max(durations) <= 2.5, playlist
    out = host.check_output(
        f"ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 {PLAYLIST}"
    )
    assert out.strip().splitlines()[0] == "h264,320,180"


def test_the_rtmp_statistics_are_served_on_loopback_only(host, viewer, publishing):
    # What `cllmh report` reads (node_reporter_rtmp_stat_url): the stream, publishing, its resolution.
    page = host.check_output("curl -sf http://127.0.0.1:8081/stat")
    lobby = page.split("<name>lobby</name>", 1)[1].split("</stream>", 1)[0]
    assert "<publishing/>" in lobby and "<width>320</width><height>180</height>" in lobby
    assert viewer.run("curl -s -m 5 http://mol-nginx-site:8081/stat").rc != 0


def test_rtmp_play_from_the_box_needs_no_token(host, publishing):
    # The recorder's path: 127.0.0.1, no token.
    assert host.check_output(f"{PROBE} rtmp://127.0.0.1/live/lobby").strip() == "h264"


def test_rtmp_play_from_another_host_with_the_token_is_allowed(host, viewer, viewer_addr, publishing):
    out = viewer.check_output(f"{PROBE} '{REMOTE_RTMP}/lobby?token={TOKEN}&{tag('play-right-token')}'")
    assert out.strip() == "h264"
    line = decision(host, "play-right-token")
    assert f"addr={viewer_addr}&" in line and '" 204 ' in line, line


def test_rtmp_play_from_another_host_without_a_token_is_refused(host, viewer, viewer_addr, publishing):
    result = viewer.run(f"{PROBE} '{REMOTE_RTMP}/lobby?{tag('play-no-token')}'")
    assert_refused(host, result, "play-no-token", viewer_addr)


def test_rtmp_play_from_another_host_with_a_wrong_token_is_refused(host, viewer, viewer_addr, publishing):
    result = viewer.run(f"{PROBE} '{REMOTE_RTMP}/lobby?token={WRONG_TOKEN}&{tag('play-wrong-token')}'")
    assert_refused(host, result, "play-wrong-token", viewer_addr)


@pytest.mark.parametrize("variant", [TOKEN.lower(), TOKEN.upper()], ids=["lower", "upper"])
def test_rtmp_play_token_is_case_sensitive(host, viewer, viewer_addr, publishing, variant):
    # nginx's `map` matches plain strings ignoring case; the role's maps use case-sensitive regexes
    # so that a token in another letter case is a wrong token.
    attempt = f"play-token-{'lower' if variant.islower() else 'upper'}"
    result = viewer.run(f"{PROBE} '{REMOTE_RTMP}/lobby?token={variant}&{tag(attempt)}'")
    assert_refused(host, result, attempt, viewer_addr)


def test_rtmp_play_from_another_host_cannot_pose_as_the_box(host, viewer, viewer_addr, publishing):
    # nginx-rtmp appends the client's arguments after its own addr=, and $arg_addr is the first one.
    result = viewer.run(f"{PROBE} '{REMOTE_RTMP}/lobby?addr=127.0.0.1&{tag('play-fake-addr')}'")
    assert_refused(host, result, "play-fake-addr", viewer_addr)


def remote_publish(viewer, query: str):
    """Publish 5 s of test video to "van" from the other host; ffmpeg fails when the site refuses."""
    return viewer.run(f"timeout 40 {PUBLISH} -t 5 '{REMOTE_RTMP}/van?{query}'")


def test_rtmp_publish_from_another_host_without_the_key_is_refused(host, viewer, viewer_addr):
    result = remote_publish(viewer, tag("publish-no-key"))
    assert_refused(host, result, "publish-no-key", viewer_addr)


def test_rtmp_publish_from_another_host_with_a_wrong_key_is_refused(host, viewer, viewer_addr):
    result = remote_publish(viewer, f"key=Kunci-Publikasi-Van-9999&{tag('publish-wrong-key')}")
    assert_refused(host, result, "publish-wrong-key", viewer_addr)


def test_rtmp_publish_key_is_case_sensitive(host, viewer, viewer_addr):
    result = remote_publish(viewer, f"key={VAN_KEY.lower()}&{tag('publish-key-lower')}")
    assert_refused(host, result, "publish-key-lower", viewer_addr)


def test_rtmp_publish_from_another_host_with_the_key_is_allowed(host, viewer, viewer_addr):
    viewer.check_output(
        f"systemd-run --unit=test-remote-publish --collect {PUBLISH} "
        f"'{REMOTE_RTMP}/van?key={VAN_KEY}&{tag('publish-key')}'"
    )

    def local_play() -> str:
        return host.run(f"{PROBE} rtmp://127.0.0.1/live/van").stdout.strip()

    try:
        # The stream exists on the site: its local play (no token needed) reads it.
        assert wait_for(local_play, timeout=30) == "h264"
    finally:
        viewer.run("systemctl stop test-remote-publish")
    line = decision(host, "publish-key")
    assert f"addr={viewer_addr}&" in line and '" 204 ' in line, line


def test_hls_is_not_served_over_plain_http(host, publishing):
    out = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/hls/lobby/index.m3u8")
    assert out == "301"


# TLS from the other host: Mozilla's "intermediate" profile.
S_CLIENT = f"timeout 20 openssl s_client -connect mol-nginx-site:443 -servername {NAME}"


def test_tls_1_2_without_forward_secrecy_or_aead_is_refused(viewer):
    # CBC with SHA-1 (in nginx's default list) and static RSA key exchange.
    for cipher in ("ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256"):
        result = viewer.run(f"{S_CLIENT} -tls1_2 -cipher {cipher} </dev/null")
        assert result.rc != 0, f"{cipher} accepted:\n{result.stdout}"


def test_tls_1_1_is_refused(viewer):
    assert viewer.run(f"{S_CLIENT} -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null").rc != 0


def test_tls_1_2_with_an_intermediate_cipher_is_accepted_without_a_session_ticket(viewer):
    out = viewer.check_output(f"{S_CLIENT} -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 </dev/null 2>&1")
    assert "Cipher is ECDHE-RSA-AES128-GCM-SHA256" in out, out
    # A ticket would let a stolen ticket key decrypt past sessions (no forward secrecy).
    assert "session ticket" not in out.lower(), out


def test_https_sends_hsts_for_two_years(host):
    headers = host.check_output(f"{CURL} -D - -o /dev/null https://{NAME}/")
    assert re.search(r"(?im)^strict-transport-security: max-age=63072000\s*$", headers), headers


# Last: the tests above played and published with right and wrong keys and tokens.
SECRETS = [
    TOKEN,
    WRONG_TOKEN,
    TOKEN.lower(),
    TOKEN.upper(),
    VAN_KEY,
    VAN_KEY.lower(),
    "Kunci-Publikasi-Van-9999",
]


def test_nginx_logs_hold_no_key_or_token_and_are_not_world_readable(host):
    logs = host.check_output("find /var/log/nginx -type f").split()
    assert AUTH_LOG in logs and "/var/log/nginx/rtmp-access.log" in logs, logs
    for log in logs:
        f = host.file(log)
        assert f.mode & 0o007 == 0, f"{log} is readable by other users: {oct(f.mode)}"
        content = host.check_output(f"cat {log}")
        leaked = [secret for secret in SECRETS if secret in content]
        assert not leaked, f"{log} holds {leaked}"
    # The decisions stay readable: the remote attempts are still there, with the key masked.
    assert "key=***" in decision(host, "publish-key"), decision(host, "publish-key")
    assert "token=***" in decision(host, "play-right-token")
