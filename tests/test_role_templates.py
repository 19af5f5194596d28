"""Role templates rendered by the real Ansible with the roles' own defaults, then read by the program
that reads them on the box (its --check). For what Molecule's site scenarios never render: a site
without cameras yet, as the Raspberry Pi image is built (make image)."""

from __future__ import annotations

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
