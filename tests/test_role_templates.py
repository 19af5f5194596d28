"""Role templates rendered by the real Ansible with the roles' own defaults, then read by the program
that reads them on the box (its --check). For what Molecule's site scenarios never render: a site
without cameras yet, as the Raspberry Pi image is built (make image)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import BIN, ROOT, run_play


def render(env: dict[str, str], tmp_path: Path, role: str, template: str, variables: dict) -> Path:
    out = tmp_path / Path(template).name.removesuffix(".j2")
    defaults = [str(ROOT / f"roles/{role}/defaults/main.yml"), str(ROOT / f"roles/{role}/vars/main.yml")]
    task = {"src": str(ROOT / f"roles/{role}/templates/{template}"), "dest": str(out), "mode": "0644"}
    play = [
        {
            "name": "Render",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": defaults,
            "tasks": [{"name": "Render the template", "ansible.builtin.template": task}],
        }
    ]
    result = run_play(env, tmp_path, play, variables)
    assert result.returncode == 0, result.stdout[-2000:]
    return out


def test_the_recorder_configuration_of_a_site_without_cameras_is_valid(
    ansible_env: dict[str, str], tmp_path: Path
) -> None:
    config = render(
        ansible_env,
        tmp_path,
        "motion_recorder",
        "etc/cllmh/recorder.yaml.j2",
        {"motion_recorder_cameras": [], "motion_recorder_model_dir": str(ROOT / "files/models")},
    )
    check = subprocess.run(
        [str(BIN / "cllmh"), "record", "--config", str(config), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "cameras: []" in config.read_text()


def test_the_first_boot_unit_makes_no_ordering_cycle_with_the_status_page_s_socket(
    ansible_env: dict[str, str], tmp_path: Path
) -> None:
    """The first boot must run before the status page's socket: with default dependencies it came after
    basic.target (after sockets.target) and before that socket, a cycle systemd broke by dropping a job,
    sometimes the first boot's (seen: a booted image without its first boot)."""
    root = tmp_path / "root"
    system = root / "etc/systemd/system"
    system.mkdir(parents=True)
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    units = {
        "firstboot": "etc/systemd/system/cllmh-firstboot.service.j2",
        "status_page": "etc/systemd/system/cllmh-status.socket.j2",
    }
    for role, template in units.items():
        (tmp_path / role).mkdir()
        unit = render(ansible_env, tmp_path / role, role, template, {})
        (system / unit.name).write_text(unit.read_text())
    for unit in ["cllmh-firstboot.service", "cllmh-status.socket"]:  # enabled as the roles enable them
        target = (system / unit).read_text().split("WantedBy=")[1].split()[0]
        (system / f"{target}.wants").mkdir(exist_ok=True)
        (system / f"{target}.wants" / unit).symlink_to(f"/etc/systemd/system/{unit}")
    verify = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "multi-user.target"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "ordering cycle" not in verify.stdout + verify.stderr, verify.stderr[-2000:]
