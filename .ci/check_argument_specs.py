"""Every role option is documented with the default the role really uses.

For each roles/*/meta/argument_specs.yml: every option that is not required has a `default:`, and
that default equals the value in the role's defaults/main.yml (the one Ansible uses; the spec's is
documentation). Every variable of defaults/main.yml is documented as an option. Exit 1 with one
line per problem."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def problems(role: Path) -> list[str]:
    spec_file = role / "meta/argument_specs.yml"
    if not spec_file.exists():
        return [f"{role.name}: no meta/argument_specs.yml"]
    defaults_file = role / "defaults/main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    found: list[str] = []
    documented: set[str] = set()
    for entry, spec in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).items():
        for name, option in (spec.get("options") or {}).items():
            documented.add(name)
            where = f"{role.name} ({entry}): {name}"
            if option.get("required"):
                continue
            if "default" not in option:
                found.append(f"{where}: no default: in argument_specs")
            elif name in defaults and option["default"] != defaults[name]:
                found.append(
                    f"{where}: argument_specs default {option['default']!r}"
                    f" != defaults/main.yml {defaults[name]!r}"
                )
    found += [
        f"{role.name}: {name} (defaults/main.yml) is not in argument_specs"
        for name in defaults
        if name not in documented
    ]
    return found


def main() -> int:
    roots = [Path(p) for p in sys.argv[1:]] or sorted(p for p in Path("roles").iterdir() if p.is_dir())
    found = [line for role in roots for line in problems(role)]
    for line in found:
        print(line)
    print(f"argument_specs: {len(roots)} roles, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
