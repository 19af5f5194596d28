"""nginx_rtmp on its own: supplied certificate, viewers, local publishing, HLS, RTMP play tokens."""

from __future__ import annotations

import pytest
from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-nginx-site"]

NAME = "cctv.example.test"
CURL = f"curl -s --resolve {NAME}:443:127.0.0.1 --cacert /root/pki/ca.crt"


def test_nginx_t_passes_and_the_config_is_managed(host):
    assert host.run("nginx -t").rc == 0
    assert "Ansible managed" in host.file("/etc/nginx/nginx.conf").content_string
    assert host.file("/etc/cllmh/tls/site.key").mode == 0o600


def test_the_supplied_certificate_is_served_and_verifies(host):
    # --cacert with the user's CA: the TLS handshake verifies the chain and the name.
    code = host.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}}' -u operator:Operator-Pass-1 https://{NAME}/live/"
    )
    assert code == "200"


def test_a_viewer_no_longer_listed_is_removed(host):
    content = host.file("/etc/nginx/cllmh.htpasswd").content_string
    assert "mantan:" not in content and "operator:" in content
    code = host.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}}' -u mantan:Mantan-Pegawai-1 https://{NAME}/live/"
    )
    assert code == "401"


@pytest.fixture(scope="module")
def publishing(host):
    """ffmpeg on the box publishes a test stream for 40 s (local publishers need no key)."""
    host.check_output(
        "systemd-run --unit=test-publish --collect ffmpeg -v error -re "
        "-f lavfi -i testsrc2=size=640x360:rate=15 -t 40 "
        "-c:v libx264 -preset ultrafast -g 15 -pix_fmt yuv420p -f flv rtmp://127.0.0.1/live/lobby"
    )
    playlist = f"https://{NAME}/hls/lobby/index.m3u8"
    fetch = f"{CURL} -f -o /dev/null -u operator:Operator-Pass-1 {playlist}"
    wait_for(lambda: host.run(fetch).rc == 0, timeout=30)
    yield
    host.run("systemctl stop test-publish")


def test_local_publish_becomes_hls_with_short_fragments(host, publishing):
    playlist = host.check_output(f"{CURL} -u operator:Operator-Pass-1 https://{NAME}/hls/lobby/index.m3u8")
    assert "#EXTM3U" in playlist
    durations = [
        float(line.split(":")[1].rstrip(",")) for line in playlist.splitlines() if line.startswith("#EXTINF")
    ]
    assert durations and max(durations) <= 2.5, playlist
    out = host.check_output(
        "ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 "
        "https://operator:Operator-Pass-1@127.0.0.1/hls/lobby/index.m3u8"
    )
    assert out.strip().splitlines()[0] == "h264,640,360"


def test_rtmp_play_with_a_token_is_allowed_from_the_box(host, publishing):
    out = host.check_output(
        "timeout 20 ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "
        "'rtmp://127.0.0.1/live/lobby?token=Token-Putar-Lobby-0001'"
    )
    assert out.strip() == "h264"


def test_hls_is_not_served_over_plain_http(host, publishing):
    out = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/hls/lobby/index.m3u8")
    assert out == "301"
