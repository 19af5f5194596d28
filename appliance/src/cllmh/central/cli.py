"""`cllmh central ...`: serve, tick, site add/revoke, user add, token add (extra `central`)."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

LOG = logging.getLogger("cllmh.central")


def _config(args: argparse.Namespace):
    from cllmh.central import config  # noqa: PLC0415 (the extra's imports only when used)

    return config.load(Path(args.config) if args.config else None)


def _store(args: argparse.Namespace):
    from cllmh.central.store import Store  # noqa: PLC0415

    return Store.open(_config(args).database)


def _serve(args: argparse.Namespace) -> int:
    if args.config:
        os.environ["CLLMH_CENTRAL_CONFIG"] = str(Path(args.config).resolve())
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", args.bind,
        "--workers", str(args.workers),
        "--umask", "0o007",
        "--access-logfile", "-",
        "cllmh.central.app:create_app()",
    ]  # fmt: skip
    os.execv(sys.executable, command)


def _tick(args: argparse.Namespace) -> int:
    from cllmh.central import tick  # noqa: PLC0415

    config = _config(args)
    store = _store(args)
    while True:
        result = tick.run(store, config, time.time())
        print(json.dumps(asdict(result)), flush=True)
        if not args.every:
            return 0
        time.sleep(args.every)


def _check(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        if (
            config.secret_key_file is not None
            and config.secret_key is None
            and config.secret_key_file.exists()
        ):
            config.secret()
    except ValueError as exc:
        print(f"cllmh central: {exc}", file=sys.stderr)
        return 2
    print(f"{args.config or 'configuration'}: ok")
    return 0


def _site(args: argparse.Namespace) -> int:
    from cllmh.central.auth import SITE_NAME  # noqa: PLC0415

    if args.action != "list" and not SITE_NAME.match(args.name or ""):
        print(f"cllmh central site: {args.name!r} is not a site name (a-z, 0-9, -)", file=sys.stderr)
        return 2
    store = _store(args)
    if args.action == "list":
        sites = store.sites()
        print(json.dumps({s.name: "revoked" if s.revoked_at else "enrolled" for s in sites}))
        return 0
    if args.action == "add":
        site = store.site(args.name)
        if site is not None and site.revoked_at is None:
            print(f"{args.name}: already enrolled")
            return 0
        store.enroll(args.name, time.time())
        print(f"{args.name}: enrolled")
        return 0
    site = store.site(args.name)
    if site is None:
        print(f"cllmh central site: no site {args.name}", file=sys.stderr)
        return 1
    if site.revoked_at is None:
        store.revoke(args.name, time.time())
        print(f"{args.name}: revoked")
    else:
        print(f"{args.name}: already revoked")
    return 0


def _user(args: argparse.Namespace) -> int:
    from cllmh.central import auth  # noqa: PLC0415

    sites = tuple(s for s in args.sites.split(",") if s)
    if args.role == "viewer" and not sites:
        print("cllmh central user: a viewer needs --sites", file=sys.stderr)
        return 2
    password = os.environ.get(args.password_env) if args.password_env else None
    password = password or getpass.getpass(f"password for {args.name}: ")
    if len(password) < 10:
        print("cllmh central user: the password needs at least 10 characters", file=sys.stderr)
        return 2
    _store(args).add_user(args.name, auth.hash_password(password), args.role, sites, time.time())
    return 0


def _token(args: argparse.Namespace) -> int:
    from cllmh.central import auth  # noqa: PLC0415

    store = _store(args)
    if store.user(args.user) is None:
        print(f"cllmh central token: no user {args.user}", file=sys.stderr)
        return 1
    token, digest = auth.new_token()
    store.add_token(digest, args.user, args.label, time.time())
    print(token)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    central = sub.add_parser("central", help="head office API (serve, tick, sites, users, tokens)")
    central.add_argument("--config", help="default: $CLLMH_CENTRAL_CONFIG or /etc/cllmh/central.yaml")
    commands = central.add_subparsers(dest="central_command", required=True)

    p = commands.add_parser("serve", help="run the API under gunicorn")
    p.add_argument("--bind", default="unix:/run/cllmh-central/api.sock")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=_serve)

    p = commands.add_parser("tick", help="evaluate alerts, send notifications, prune (a timer runs it)")
    p.add_argument("--every", type=float, default=0, help="repeat every N seconds (development)")
    p.set_defaults(func=_tick)

    p = commands.add_parser("check", help="only validate the configuration")
    p.set_defaults(func=_check)

    p = commands.add_parser("site", help="list, enrol or revoke sites (a site's name = its certificate's CN)")
    p.add_argument("action", choices=["list", "add", "revoke"])
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_site)

    p = commands.add_parser("user", help="add or update a user")
    p.add_argument("action", choices=["add"])
    p.add_argument("name")
    p.add_argument("--role", choices=["viewer", "operator", "admin"], required=True)
    p.add_argument("--sites", default="", help="comma-separated sites the user may see (empty: all)")
    p.add_argument("--password-env", help="read the password from this environment variable")
    p.set_defaults(func=_user)

    p = commands.add_parser("token", help="print a new API token for a user (shown once)")
    p.add_argument("action", choices=["add"])
    p.add_argument("user")
    p.add_argument("--label", required=True)
    p.set_defaults(func=_token)
