"""One camera-name rule: the roles' (playbooks/group_vars/all/names.yml) is the Python package's
(cllmh.names.CAMERA_NAME), and every role that takes camera names asserts with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED_FACTS, run_role_tasks


def package_camera_name() -> str:
    # This checkout's module, by path (the venv may hold another checkout's cllmh).
    spec = importlib.util.spec_from_file_location("cllmh_names", ROOT / "appliance/src/cllmh/names.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CAMERA_NAME


PATTERN = yaml.safe_load(SHARED_FACTS.read_text())["cllmh_camera_name_pattern"]
LONGEST = "k" * 64  # the longest name allowed


def test_the_roles_camera_name_pattern_is_the_python_package_s() -> None:
    assert package_camera_name() == PATTERN


# Each role's assert task file and its settings for a list of camera names.
ROLES = {
    "camera_ingest": lambda names: {
        "camera_ingest_cameras": [
            {"name": n, "url": f"rtsp://192.168.88.64:554/{n}", "password": "Sandi-Asli-123"} for n in names
        ]
    },
    "motion_recorder": lambda names: {"motion_recorder_cameras": [{"name": n} for n in names]},
    "nginx_rtmp": lambda names: {"nginx_rtmp_streams": names},
    "node_reporter": lambda names: {"node_reporter_cameras": names},
}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_asserts_camera_names_with_the_shared_pattern(
    ansible_env: dict[str, str], tmp_path: Path, role: str
) -> None:
    names = ["gerbang", "gudang_2", LONGEST]
    good = run_role_tasks(ansible_env, tmp_path, role, "assert.yml", ROLES[role](names))
    assert good.returncode == 0, good.stdout
    # '_' first: every role's own pattern used to allow it, the package refuses it
    bad = run_role_tasks(ansible_env, tmp_path, role, "assert.yml", ROLES[role](["gerbang", "_gudang"]))
    assert bad.returncode != 0, bad.stdout
    assert PATTERN in bad.stdout, bad.stdout
