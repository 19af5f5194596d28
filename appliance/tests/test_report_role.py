"""The node_reporter role and the reporter's model agree: the documented defaults are the role's
defaults, the rendered configuration validates, and its defaults are the model's; the rendered unit's
user and groups may list syslog-ng's disk-buffer directory as the syslog_ng role makes it."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
import yaml

import cllmh
from cllmh.report.config import ReportConfig, load_config

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE = ROLES / "node_reporter"
# role variable -> the model's field
FIELDS = {
    "url": "url",
    "ca_file": "ca_file",
    "cert_file": "cert_file",
    "key_file": "key_file",
    "cameras": "cameras",
    "heartbeat_interval": "heartbeat_s",
    "poll_interval": "poll_s",
    "event_max_age_days": "event_max_age_days",
    "backoff_initial": "backoff_initial_s",
    "backoff_max": "backoff_max_s",
    "timeout": "timeout_s",
    "rtmp_stat_url": "rtmp_stat_url",
    "rtmp_application": "rtmp_application",
    "state_dir": "state_dir",
    "recordings_dir": "recordings_dir",
    "log_buffer_dir": "log_buffer_dir",
    "language": "language",
}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture
def defaults() -> dict:
    return _yaml(ROLE / "defaults" / "main.yml")


def test_argument_specs_document_every_default(defaults: dict) -> None:
    options = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    assert {k: o["default"] for k, o in options.items()} == defaults


def render(variables: dict) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    env.filters["to_json"] = json.dumps
    template = env.from_string((ROLE / "templates" / "etc" / "cllmh" / "report.yaml.j2").read_text())
    return template.render(ansible_managed="Ansible managed", **variables)


def test_the_rendered_configuration_validates_with_the_models_defaults(
    defaults: dict, tmp_path: Path
) -> None:
    rendered = tmp_path / "report.yaml"
    rendered.write_text(
        render({**defaults, "node_reporter_url": "https://pusat.example", "node_reporter_cameras": ["gate"]})
    )
    config = load_config(rendered)
    assert config.url == "https://pusat.example" and config.cameras == ["gate"]
    model_defaults = {name: field.default for name, field in ReportConfig.model_fields.items()}
    for role_key, field in FIELDS.items():
        if role_key in ("url", "cameras"):
            continue
        role_value = defaults[f"node_reporter_{role_key}"]
        assert getattr(config, field) == model_defaults[field], field
        expected = model_defaults[field]
        assert type(expected)(role_value) == expected, f"{role_key} != the model's {field}"
    assert set(FIELDS.values()) == set(ReportConfig.model_fields)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    return env


def role_defaults(*roles: str) -> dict:
    """The roles' defaults as Ansible resolves them (templated values rendered)."""
    found: dict = {"inventory_hostname": "gudang-1"}
    for role in roles:
        context = {"role_path": str(ROLES / role)}
        for name, value in _yaml(ROLES / role / "defaults" / "main.yml").items():
            found[name] = (
                _env().from_string(value).render(**found, **context) if isinstance(value, str) else value
            )
    return found


def unit_settings(*roles: str) -> dict[str, list[str]]:
    """The reporter's rendered unit (with the appliance's shared sandbox): key -> its values."""
    variables = role_defaults(*roles) | _yaml(ROLE / "vars" / "main.yml")
    template = ROLE / "templates" / "etc" / "systemd" / "system" / "cllmh-report.service.j2"
    rendered = _env().from_string(template.read_text()).render(ansible_managed="Ansible managed", **variables)
    settings: dict[str, list[str]] = {}
    for line in rendered.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def buffer_directory_task() -> dict:
    """syslog_ng's task that makes the forwarding disk-buffer directory (its owner, group, mode)."""
    tasks = _yaml(ROLES / "syslog_ng" / "tasks" / "configure.yml")
    (task,) = [
        t["ansible.builtin.file"]
        for t in tasks
        if t.get("ansible.builtin.file", {}).get("path") == "{{ __syslog_ng_buffer_dir }}"
    ]
    return task


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A directory any user may traverse (pytest's tmp_path is the root's only)."""
    path = Path(tempfile.mkdtemp(prefix="cllmh-buffer-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _backlog_as(buffer: Path, uid: int, gid: int, groups: list[int]) -> str:
    """What `cllmh.collect.logfwd.backlog_bytes` (the heartbeat's log backlog) reads for a process
    with these credentials (setpriv, as systemd's User=/Group=/SupplementaryGroups= set them)."""
    group_option = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    code = "import sys; from pathlib import Path; from cllmh.collect import logfwd; "
    code += "print(logfwd.backlog_bytes(Path(sys.argv[1])))"
    answer = subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            *group_option,
            sys.executable,
            "-c",
            code,
            str(buffer),
        ],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(cllmh.__file__).parents[1])},
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="makes root:adm files and runs as the unit's user (root)")
def test_the_reporter_s_unit_lists_syslog_ng_s_buffer_directory_so_the_backlog_is_known(
    open_tmp: Path,
) -> None:
    """The syslog_ng role makes the buffer directory root:<syslog_ng_buffer_group> 0750; the
    reporter's unit runs as cllmh with its reader groups: it reads the backlog's size (without the
    group the heartbeat's log_forwarding.backlog_bytes was null), and the logs that group opens are
    hidden from it."""
    syslog_ng = role_defaults("syslog_ng")
    task = buffer_directory_task()
    buffer = open_tmp / "cllmh-buffer"
    buffer.mkdir()
    group = _env().from_string(task["group"]).render(**syslog_ng)
    os.chown(buffer, pwd.getpwnam(task["owner"]).pw_uid, grp.getgrnam(group).gr_gid)
    buffer.chmod(int(task["mode"], 8))
    (buffer / "syslog-ng-00000.rqf").write_bytes(b"q" * 4096)
    (buffer / "syslog-ng-00000.rqf").chmod(0o600)

    unit = unit_settings("appliance", "node_reporter")
    (user,), (main_group,) = unit["User"], unit["Group"]
    # The unit's user and group (cllmh) where this machine has them, else nobody's: the directory
    # opens through the supplementary groups only.
    uid = (
        pwd.getpwnam(user).pw_uid
        if user in {p.pw_name for p in pwd.getpwall()}
        else pwd.getpwnam("nobody").pw_uid
    )
    gid = grp.getgrnam(main_group).gr_gid if main_group in {g.gr_name for g in grp.getgrall()} else uid
    supplementary = [
        grp.getgrnam(name).gr_gid for value in unit.get("SupplementaryGroups", []) for name in value.split()
    ]

    assert _backlog_as(buffer, uid, gid, supplementary) == "4096"
    assert _backlog_as(buffer, uid, gid, []) == "None"  # the directory's mode bites without the group
    hidden = [Path(value.removeprefix("-")) for value in unit.get("InaccessiblePaths", [])]
    assert any(Path(syslog_ng["syslog_ng_log_dir"]).is_relative_to(path) for path in hidden), hidden
