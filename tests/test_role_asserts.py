"""The site roles refuse unsafe settings at their assert step, with a message that names the fix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, run_role_tasks

GOOD = {
    "name": "gerbang",
    "url": "rtsp://192.168.88.64:554/Streaming/Channels/101",
    "password": "Sandi-Asli-123",
}


def cameras(tmp_path: Path, env: dict[str, str], *entries: dict) -> subprocess.CompletedProcess[str]:
    return run_role_tasks(
        env, tmp_path, "camera_ingest", "assert.yml", {"camera_ingest_cameras": list(entries)}
    )


def test_a_good_camera_list_passes(ansible_env: dict[str, str], tmp_path: Path) -> None:
    sub = {
        **GOOD,
        "name": "gudang-a",
        "substream_url": "rtsp://[fd00::5]:8554/cam/realmonitor?channel=1&subtype=1",
    }
    result = cameras(tmp_path, ansible_env, GOOD, sub)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "-rf"}, "a leading - would read as an option"),
        ({"url": "rtsp://192.168.88.64:70000/live"}, "PORT 1-65535"),
        ({"url": "rtsp://192.168.88.64:0/live"}, "PORT 1-65535"),
        ({"substream_url": "rtsp://192.168.88.64:99999/sub"}, "PORT 1-65535"),
        ({"url": 'rtsp://192.168.88.64/live"; rm -rf /'}, "no\nquote"),
        ({"url": "rtsp://admin:pw@192.168.88.64/live"}, "not in the URL"),
        ({"password": "CHANGE-ME-camera-password"}, "placeholder (CHANGE-ME)"),
    ],
    ids=["leading-dash", "port-too-high", "port-zero", "substream-port", "quote", "userinfo", "placeholder"],
)
def test_an_unsafe_camera_is_refused_with_a_clear_message(
    ansible_env: dict[str, str], tmp_path: Path, change: dict, message: str
) -> None:
    result = cameras(tmp_path, ansible_env, {**GOOD, **change})
    assert result.returncode != 0, result.stdout
    assert " ".join(message.split()) in " ".join(result.stdout.split()), result.stdout
    assert "Sandi-Asli-123" not in result.stdout


def test_a_placeholder_user_password_is_refused(ansible_env: dict[str, str], tmp_path: Path) -> None:
    users = [
        {"name": "satpam", "password": "CHANGE-ME-viewer-password"},
        {"name": "teknisi", "role": "technician", "password": "Teknisi-Pass-1"},
    ]
    settings = {"status_page_users": users, "status_page_live_secret": "live-secret-0123456789"}
    result = run_role_tasks(ansible_env, tmp_path, "status_page", "assert.yml", settings)
    assert result.returncode != 0, result.stdout
    assert "placeholder (CHANGE-ME)" in result.stdout and "'satpam'" in result.stdout, result.stdout
    assert "Teknisi-Pass-1" not in result.stdout


def test_status_page_users_and_live_secret_are_checked(ansible_env: dict[str, str], tmp_path: Path) -> None:
    good = [{"name": "satpam", "password": "Lihat-Kamera-1"}]
    cases = [
        ({"status_page_users": []}, "needs at least one user"),
        ({"status_page_users": [{**good[0], "role": "admin"}]}, "role viewer or technician"),
        ({"status_page_users": [{**good[0], "password": "short"}]}, "10 or more characters"),
        ({"status_page_live_secret": "too-short"}, "at least 16 characters"),
    ]
    for change, message in cases:
        settings = {"status_page_users": good, "status_page_live_secret": "live-secret-0123456789", **change}
        result = run_role_tasks(ansible_env, tmp_path, "status_page", "assert.yml", settings)
        assert result.returncode != 0, (change, result.stdout)
        assert message in " ".join(result.stdout.split()), (change, result.stdout)
    settings = {"status_page_users": good, "status_page_live_secret": "live-secret-0123456789"}
    assert run_role_tasks(ansible_env, tmp_path, "status_page", "assert.yml", settings).returncode == 0


def test_the_example_production_inventory_is_refused_until_its_placeholders_are_replaced(
    ansible_env: dict[str, str],
) -> None:
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(ROOT / "inventories/production.example"),
            str(ROOT / "playbooks/cctv_site.yml"),
            "--tags",
            "camera_ingest_assert",
            "-e",
            "ansible_connection=local ansible_become=false",
        ],
        cwd=ROOT,
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert result.stdout.count("placeholder (CHANGE-ME)") == 2, result.stdout  # both sites
    assert "CHANGE-ME-camera-password" not in result.stdout


def test_without_a_certificate_a_production_site_stops_instead_of_self_signing(
    ansible_env: dict[str, str], tmp_path: Path
) -> None:
    settings = {"nginx_rtmp_tls_selfsigned_allowed": False}
    result = run_role_tasks(ansible_env, tmp_path, "nginx_rtmp", "assert.yml", settings)
    assert result.returncode != 0, result.stdout
    assert "No certificate for localhost" in result.stdout, result.stdout
    settings["nginx_rtmp_tls_selfsigned_allowed"] = True
    result = run_role_tasks(ansible_env, tmp_path, "nginx_rtmp", "assert.yml", settings)
    assert result.returncode == 0, result.stdout
    assert "WARNING / PERINGATAN: localhost serves a SELF-SIGNED certificate" in result.stdout
