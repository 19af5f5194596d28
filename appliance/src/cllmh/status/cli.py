"""`cllmh status ...`: serve (gunicorn), check (the configuration, users and secrets), users (hash
the inventory's users into the users file, keeping every hash that still matches its password)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_CONFIG = "/etc/cllmh-status/status.yaml"


def _serve(args: argparse.Namespace) -> int:
    os.environ["CLLMH_STATUS_CONFIG"] = str(Path(args.config).resolve())
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", args.bind,
        # One process (the login limiter's counts are the site's), threads for concurrent players.
        "--workers", "1",
        "--worker-class", "gthread",
        "--threads", str(args.threads),
        "--umask", "0o007",
        # gunicorn 27's control socket would go to the (non-existent) home directory: not needed.
        "--no-control-socket",
        "--access-logfile", "-",
        "cllmh.status.app:create_app()",
    ]  # fmt: skip
    os.execv(sys.executable, command)


def _check(args: argparse.Namespace) -> int:
    from cllmh.status import config  # noqa: PLC0415 (the extra's imports only when used)

    try:
        loaded = config.load(Path(args.config))
        if args.files:
            config.load_users(loaded.users_file)
            config.read_secret(loaded.session_secret_file, 32)
            config.read_secret(loaded.live_secret_file)
    except (ValueError, OSError) as exc:
        print(f"cllmh status: {exc}", file=sys.stderr)
        return 2
    print(f"{args.config}: ok")
    return 0


def hashed_users(wanted: list[dict], current: dict[str, dict]) -> list[dict]:
    """The users file's entries for `wanted` ({name, role, password}): an existing hash is kept
    when it still matches the password, so a run without changes rewrites nothing."""
    from werkzeug.security import check_password_hash  # noqa: PLC0415

    from cllmh.status.auth import hash_password  # noqa: PLC0415

    out = []
    for entry in wanted:
        old = current.get(entry["name"])
        keep = old is not None and check_password_hash(old["password_hash"], entry["password"])
        digest = old["password_hash"] if keep and old else hash_password(entry["password"])
        out.append({"name": entry["name"], "role": entry["role"], "password_hash": digest})
    return out


def _users(args: argparse.Namespace) -> int:
    """Reads [{name, role, password}] as JSON on stdin (never in arguments), writes --out."""
    import yaml  # noqa: PLC0415

    from cllmh.status import config  # noqa: PLC0415

    wanted = json.load(sys.stdin)
    for entry in wanted:
        if len(entry.get("password", "")) < 10:
            print(
                f"cllmh status users: {entry.get('name')}: the password needs at least 10 characters",
                file=sys.stderr,
            )
            return 2
    out = Path(args.out)
    current: dict[str, dict] = {}
    if out.exists():
        try:
            current = {u.name: u.model_dump() for u in config.load_users(out).values()}
        except ValueError:
            current = {}
    try:
        users = config.UsersFile.model_validate({"users": hashed_users(wanted, current)})
    except ValueError as exc:
        print(f"cllmh status users: {exc}", file=sys.stderr)
        return 2
    text = yaml.safe_dump({"users": [u.model_dump() for u in users.users]}, sort_keys=False)
    if out.exists() and out.read_text(encoding="utf-8") == text:
        print("unchanged")
        return 0
    if args.check:
        print("changed")
        return 0
    tmp = out.with_name(f".{out.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, int(args.mode, 8))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if args.group:
        import grp  # noqa: PLC0415

        os.chown(tmp, 0, grp.getgrnam(args.group).gr_gid)
    os.chmod(tmp, int(args.mode, 8))
    os.replace(tmp, out)
    print("changed")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="the site's status page (serve, check, users)")
    status.add_argument("--config", default=DEFAULT_CONFIG)
    commands = status.add_subparsers(dest="status_command", required=True)

    p = commands.add_parser("serve", help="run the status page under gunicorn")
    p.add_argument("--bind", default="unix:/run/cllmh-status/status.sock")
    p.add_argument("--threads", type=int, default=8)
    p.set_defaults(func=_serve)

    p = commands.add_parser("check", help="validate the configuration")
    p.add_argument("--files", action="store_true", help="also read the users file and both secrets")
    p.set_defaults(func=_check)

    p = commands.add_parser("users", help="hash users read as JSON on stdin into the users file")
    p.add_argument("--out", required=True)
    p.add_argument("--group", default="")
    p.add_argument("--mode", default="0640")
    p.add_argument("--check", action="store_true", help="only say whether the file would change")
    p.set_defaults(func=_users)
