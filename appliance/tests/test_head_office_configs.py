"""The grafana and elasticsearch roles' configuration files, rendered by Ansible from the roles' own
templates, defaults and vars, and read back with the parsers their programs use (INI, YAML, APT deb822).

Grafana and Elasticsearch cannot run here; these files are what a real head office would be given.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = 'pw#with;special"chars'
READER_PASSWORD = "reader-secret-1"
MEMTOTAL_MB = 6000
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"

# One task writes every rendering into one JSON file (a task per file costs a module run each).
PLAYBOOK = """
- name: Render the head-office roles' templates
  hosts: localhost
  gather_facts: false
  vars_files:
    - {repo}/roles/grafana/defaults/main.yml
    - {repo}/roles/grafana/vars/main.yml
    - {repo}/roles/elasticsearch/defaults/main.yml
    - {repo}/roles/elasticsearch/vars/main.yml
  tasks:
    - name: Render
      ansible.builtin.copy:
        dest: "{out}/rendered.json"
        mode: "0600"
        content: "{{{{ __rendered | to_json }}}}"
      vars:
        ansible_facts: {{memtotal_mb: {memtotal_mb}}}
        g: {repo}/roles/grafana/templates
        e: {repo}/roles/elasticsearch/templates
        __rendered:
          grafana.ini: "{{{{ lookup('template', g ~ '/etc/grafana/grafana.ini.j2') }}}}"
          grafana-proxied.ini: >-
            {{{{ lookup('template', g ~ '/etc/grafana/grafana.ini.j2',
                        template_vars={{'grafana_root_url': 'https://ho.example.id/grafana/'}}) }}}}
          datasources.yaml: >-
            {{{{ lookup('template', g ~ '/etc/grafana/provisioning/datasources/cllmh.yaml.j2') }}}}
          datasources-ca.yaml: >-
            {{{{ lookup('template', g ~ '/etc/grafana/provisioning/datasources/cllmh.yaml.j2',
                        template_vars={{'grafana_elasticsearch_ca_certificate': test_ca}}) }}}}
          datasources-no-es.yaml: >-
            {{{{ lookup('template', g ~ '/etc/grafana/provisioning/datasources/cllmh.yaml.j2',
                        template_vars={{'grafana_elasticsearch_enabled': false}}) }}}}
          dashboards.yaml: >-
            {{{{ lookup('template', g ~ '/etc/grafana/provisioning/dashboards/cllmh.yaml.j2') }}}}
          grafana.sources: "{{{{ lookup('template', g ~ '/etc/apt/sources.list.d/grafana.sources.j2') }}}}"
          grafana.pref: "{{{{ lookup('template', g ~ '/etc/apt/preferences.d/grafana.j2') }}}}"
          elasticsearch.yml: "{{{{ lookup('template', e ~ '/etc/elasticsearch/elasticsearch.yml.j2') }}}}"
          heap.options: >-
            {{{{ lookup('template', e ~ '/etc/elasticsearch/jvm.options.d/cllmh-heap.options.j2') }}}}
          elasticsearch.sources: >-
            {{{{ lookup('template', e ~ '/etc/apt/sources.list.d/elasticsearch.sources.j2') }}}}
          elasticsearch.pref: "{{{{ lookup('template', e ~ '/etc/apt/preferences.d/elasticsearch.j2') }}}}"
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    playbook = out / "render.yml"
    playbook.write_text(PLAYBOOK.format(repo=REPO, out=out, memtotal_mb=MEMTOTAL_MB))
    secrets = {
        "grafana_admin_password": ADMIN_PASSWORD,
        "grafana_elasticsearch_password": READER_PASSWORD,
        "ansible_python_interpreter": sys.executable,
    }
    extra = json.dumps({**secrets, "test_ca": CA})
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", extra, str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for name, text in json.loads((out / "rendered.json").read_text()).items():
        (out / name).write_text(text)
    return out


def ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    parser.read_string(path.read_text())
    return parser


def test_grafana_ini_turns_anonymous_access_and_sign_up_off(rendered: Path) -> None:
    config = ini(rendered / "grafana.ini")
    assert config["auth.anonymous"]["enabled"] == "false"
    assert config["users"]["allow_sign_up"] == "false"
    assert config["server"]["http_addr"] == "127.0.0.1"
    assert config["analytics"]["reporting_enabled"] == "false"


def test_grafana_ini_quotes_the_admin_password_from_the_vault(rendered: Path) -> None:
    # Grafana reads """...""" literally, so a password with # or ; is not cut at a comment sign.
    assert ini(rendered / "grafana.ini")["security"]["admin_password"] == f'"""{ADMIN_PASSWORD}"""'


def test_grafana_behind_a_proxy_path_serves_from_it_with_secure_cookies(rendered: Path) -> None:
    assert "root_url" not in ini(rendered / "grafana.ini")["server"]
    config = ini(rendered / "grafana-proxied.ini")
    assert config["server"]["root_url"] == "https://ho.example.id/grafana/"
    assert config["server"]["serve_from_sub_path"] == "true"
    assert config["security"]["cookie_secure"] == "true"


def test_datasources_carry_the_fixed_uids_and_the_reader_password(rendered: Path) -> None:
    provisioning = yaml.safe_load((rendered / "datasources.yaml").read_text())
    assert provisioning["apiVersion"] == 1
    sources = {source["uid"]: source for source in provisioning["datasources"]}
    assert set(sources) == {"cllmh-loki", "cllmh-es"}
    assert sources["cllmh-loki"]["url"] == "http://127.0.0.1:3100"
    es = sources["cllmh-es"]
    assert es["jsonData"]["index"] == "cllmh-events"
    assert es["secureJsonData"] == {"basicAuthPassword": READER_PASSWORD}
    assert es["jsonData"]["tlsAuthWithCACert"] is False


def test_the_elasticsearch_ca_is_given_to_its_datasource(rendered: Path) -> None:
    es = yaml.safe_load((rendered / "datasources-ca.yaml").read_text())["datasources"][1]
    assert es["jsonData"]["tlsAuthWithCACert"] is True
    assert es["secureJsonData"]["tlsCACert"] == CA


def test_without_elasticsearch_only_loki_is_provisioned(rendered: Path) -> None:
    sources = yaml.safe_load((rendered / "datasources-no-es.yaml").read_text())["datasources"]
    assert [source["uid"] for source in sources] == ["cllmh-loki"]


def test_dashboards_provider_reads_the_role_directory(rendered: Path) -> None:
    [provider] = yaml.safe_load((rendered / "dashboards.yaml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/cllmh"
    assert provider["allowUiUpdates"] is False


@pytest.mark.parametrize("vendor", ["grafana", "elasticsearch"])
def test_apt_repository_is_signed_by_its_own_key_and_pinned(rendered: Path, vendor: str) -> None:
    fields = dict(
        line.split(": ", 1)
        for line in (rendered / f"{vendor}.sources").read_text().splitlines()
        if ": " in line
    )
    assert fields["Signed-By"] == f"/etc/apt/keyrings/{vendor}.asc"
    assert fields["URIs"].startswith("https://")
    preference = (rendered / f"{vendor}.pref").read_text()
    assert f"Package: {vendor}\n" in preference
    assert "Pin-Priority: 1001" in preference


def test_elasticsearch_is_one_node_with_security_on(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "elasticsearch.yml").read_text())
    assert config["discovery.type"] == "single-node"
    assert config["xpack.security.enabled"] is True
    assert config["xpack.security.http.ssl"]["enabled"] is True
    assert config["transport.host"] == "127.0.0.1"
    assert config["http.host"] == "127.0.0.1"


def test_elasticsearch_heap_is_half_of_the_hosts_memory(rendered: Path) -> None:
    options = [line for line in (rendered / "heap.options").read_text().splitlines() if line.startswith("-X")]
    assert options == [f"-Xms{MEMTOTAL_MB // 2}m", f"-Xmx{MEMTOTAL_MB // 2}m"]
