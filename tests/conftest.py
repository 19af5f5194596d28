"""Repository-level checks: role asserts and inventory settings, run with the real ansible-playbook
against the controller itself (the asserts run on the controller; nothing is installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The shared facts the roles read (playbooks/group_vars/all), as the playbooks see them.
SHARED_FACTS = ROOT / "playbooks/group_vars/all/names.yml"


@pytest.fixture(scope="session")
def ansible_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", PATH=f"{BIN}:{env.get('PATH', '')}"
    )
    return env


def run_play(
    env: dict[str, str], tmp_path: Path, play: list[dict], variables: dict
) -> subprocess.CompletedProcess[str]:
    """Run `play` on localhost (connection local) with the shared facts and `variables` as extra vars."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps(play))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{SHARED_FACTS}",
            "-e",
            f"@{extra}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        cwd=ROOT,
        env={**env, "ANSIBLE_ROLES_PATH": str(ROOT / "roles")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_role_tasks(
    env: dict[str, str], tmp_path: Path, role: str, tasks_from: str, variables: dict
) -> subprocess.CompletedProcess[str]:
    """Run one task file of a role on localhost with the shared facts and `variables` as extra vars."""
    play = [
        {
            "name": "Role tasks",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": f"Run {role}/{tasks_from}",
                    "ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from},
                }
            ],
        }
    ]
    return run_play(env, tmp_path, play, variables)
