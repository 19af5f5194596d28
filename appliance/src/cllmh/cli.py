"""The `cllmh` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from cllmh import __version__, catalogue, ingest, probe
from cllmh.central import cli as central_cli
from cllmh.status import cli as status_cli

if TYPE_CHECKING:
    from cllmh.guard import GuardConfig


def _cmd_ingest(args: argparse.Namespace) -> int:
    source = args.source or os.environ.get(args.source_env, "")
    if not source:
        print(f"cllmh ingest: no camera URL (--source or {args.source_env})", file=sys.stderr)
        return 2
    try:
        backoff = ingest.Backoff(initial=args.backoff_initial, maximum=args.backoff_max)
        command = ingest.ffmpeg_command(
            source, args.target, audio=args.audio, io_timeout_s=args.io_timeout, ffmpeg=args.ffmpeg
        )
    except ValueError as exc:
        print(f"cllmh ingest: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("cllmh.ingest").info(
        "%s: restreaming %s to %s", args.name, ingest.redact(source), args.target
    )
    supervisor = ingest.Supervisor(args.name, command, backoff)
    ingest.install_signal_handlers(supervisor)
    supervisor.run()
    return 0


def read_env_file(path: str) -> dict[str, str]:
    """KEY="value" lines of a systemd EnvironmentFile (as camera_ingest writes them)."""
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip('"')
    return values


def _cmd_validate_camera(args: argparse.Namespace) -> int:
    url = args.url
    if args.camera_env:
        try:
            url = read_env_file(args.camera_env).get(args.url_var, "")
        except OSError as exc:
            print(f"cllmh validate-camera: cannot read {args.camera_env}: {exc.strerror}", file=sys.stderr)
            return 2
    if not url:
        print(f"cllmh validate-camera: give a URL or --camera-env FILE with {args.url_var}", file=sys.stderr)
        return 2
    args.url = url
    try:
        report = probe.probe(
            args.url,
            window_s=args.window,
            timeout_s=args.timeout,
            max_keyframe_interval_s=args.max_keyframe_interval,
            ffprobe=args.ffprobe,
        )
    except probe.ProbeError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": exc.kind.value, "message": exc.message}))
        else:
            print(f"{ingest.redact(args.url)}: {exc.kind.value}: {exc.message}", file=sys.stderr)
        return exc.kind.exit_code
    print(
        json.dumps({"ok": True, **json.loads(report.to_json())})
        if args.json
        else f"{report.url}: {report.describe()}"
    )
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the long-running commands stop cleanly on it."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _cmd_guard(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415 - the guard's dependencies load only for this command

    from cllmh import guard  # noqa: PLC0415

    try:
        config = guard.load_config(Path(args.config))
    except ValueError as exc:
        print(f"cllmh guard: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: ok")
        return 0
    if args.status:
        return _guard_status(guard, config)
    runner = guard.Guard(config, publish_status=not args.once)
    if args.once:
        print(json.dumps(runner.tick(), indent=2))
        return 0
    stop = _stop_on_signals()
    logging.getLogger("cllmh.guard").info(
        "guarding %s (floor %g%% or %g h of recording, every %g s)",
        config.recordings_dir,
        config.floor_percent,
        config.floor_hours,
        config.interval_s,
    )
    runner.run(stop)
    return 0


def _guard_status(guard: ModuleType, config: GuardConfig) -> int:
    """Print the running service's stored status with its age; reads only, writes nothing."""
    import sqlite3  # noqa: PLC0415
    import time  # noqa: PLC0415

    try:
        stored = guard.read_status(config.recordings_dir)
    except sqlite3.Error as exc:
        print(f"cllmh guard: cannot read {config.recordings_dir / 'index.sqlite3'}: {exc}", file=sys.stderr)
        return 1
    if stored is None:
        print(
            f"cllmh guard: no status stored in {config.recordings_dir} yet: is cllmh-guard running?",
            file=sys.stderr,
        )
        return 1
    now = time.time()
    print(json.dumps(stored.to_json(now), indent=2))
    stale_after = max(60.0, 3 * config.interval_s)
    if stored.age_s(now) > stale_after:
        print(
            f"cllmh guard: the status is {stored.age_s(now):.0f} s old (the service stores it every "
            f"{config.interval_s:g} s): is cllmh-guard running?",
            file=sys.stderr,
        )
        return 3
    return 0


def _cmd_firstboot(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from cllmh import firstboot  # noqa: PLC0415

    try:
        done = firstboot.run(Path(args.root), Path(args.site_file), live=args.root == "/")
    except firstboot.SiteFileError as exc:
        print(f"cllmh firstboot: {args.site_file}: {exc}", file=sys.stderr)
        return 2
    for line in done:
        print(f"cllmh firstboot: {line}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import ssl  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from cllmh.report import config as report_config  # noqa: PLC0415 - pydantic loads only here
    from cllmh.report import outbox, service, transport  # noqa: PLC0415

    try:
        config = report_config.load_config(Path(args.config))
    except ValueError as exc:
        print(f"cllmh report: {exc}", file=sys.stderr)
        return 2
    if args.outbox:  # read-only: an operator (maybe root) leaves no file behind for the service
        messages = outbox.read_listing(config.outbox_path)
        parked = sum(m["parked"] is not None for m in messages)
        listing = {"pending": len(messages) - parked, "parked": parked, "messages": messages}
        print(json.dumps(listing, indent=2))
        return 0
    try:
        context = transport.client_context(config.ca_file, config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as exc:
        print(
            f"cllmh report: cannot load the fleet CA {config.ca_file} or the site's certificate "
            f"{config.cert_file} / key {config.key_file}: {exc}",
            file=sys.stderr,
        )
        return 2
    if args.check_config:
        print(f"{args.config}: ok (head office {config.url}, {len(config.cameras)} cameras)")
        return 0
    box = outbox.Outbox(config.outbox_path)
    reporter = service.Reporter(config, box, transport.Transport(config.url, context, config.timeout_s))
    stop = _stop_on_signals()
    catalogue.log(
        logging.getLogger("cllmh.report"),
        logging.INFO,
        "report.started",
        config.language,
        url=config.url,
        interval=f"{config.heartbeat_s:g}",
        outbox=config.outbox_path,
        pending=box.stats().pending,
    )
    reporter.run(stop)
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from cllmh import recorder  # noqa: PLC0415 - OpenCV and the detector load only for this command
    from cllmh.detect import Detector  # noqa: PLC0415

    try:
        config = recorder.load_config(Path(args.config))
        camera = config.camera(args.camera) if args.camera else None
    except ValueError as exc:
        print(f"cllmh record: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: ok ({len(config.cameras)} cameras)")
        return 0
    if camera is None:
        print("cllmh record: --camera NAME is required", file=sys.stderr)
        return 2
    detector = Detector(
        config.model.path,
        anchors_path=config.model.anchors,
        threshold=config.model.detector_threshold,
        threads=config.model.threads,
    )
    stop = _stop_on_signals()
    rec = recorder.CameraRecorder(config, camera, detector, realtime_input=args.realtime)
    result = rec.run(stop)
    print(recorder.report(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cllmh", description="CLLMH site appliance")
    parser.add_argument("--version", action="version", version=f"cllmh {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="restream one camera to the local RTMP server, restarting on failure")
    p.add_argument("--name", required=True, help="camera name (used in logs)")
    p.add_argument("--source", help="camera URL; default: the environment variable named by --source-env")
    p.add_argument(
        "--source-env",
        default="CLLMH_CAMERA_URL",
        help="environment variable holding the camera URL (CLLMH_SUBSTREAM_URL for a substream)",
    )
    p.add_argument("--target", required=True, help="RTMP URL to publish to")
    p.add_argument("--audio", choices=ingest.AUDIO_MODES, default="drop")
    p.add_argument("--io-timeout", type=float, default=10.0, help="seconds before a stalled read fails")
    p.add_argument("--backoff-initial", type=float, default=1.0)
    p.add_argument("--backoff-max", type=float, default=8.0)
    p.add_argument("--ffmpeg", default="ffmpeg")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser(
        "validate-camera",
        help="probe a camera URL: codec, resolution, fps, keyframe interval; distinct errors per failure",
    )
    p.add_argument("url", nargs="?", help="rtsp://user:password@host:port/path (or rtmp://...)")
    p.add_argument("--camera-env", help="read the URL from a camera_ingest environment file instead")
    p.add_argument(
        "--url-var",
        default="CLLMH_CAMERA_URL",
        help="with --camera-env: the variable to read (CLLMH_SUBSTREAM_URL for the camera's substream)",
    )
    p.add_argument("--window", type=float, default=12.0, help="seconds of video to read")
    p.add_argument("--timeout", type=float, default=30.0, help="overall time limit in seconds")
    p.add_argument(
        "--max-keyframe-interval", type=float, default=10.0, help="longest acceptable keyframe spacing (s)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--ffprobe", default="ffprobe")
    p.set_defaults(func=_cmd_validate_camera)

    p = sub.add_parser(
        "guard", help="keep free space above the floor by deleting the oldest, least important events"
    )
    p.add_argument("--config", default="/etc/cllmh/guard.yaml")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--once",
        action="store_true",
        help="one pass (may delete), print its status as JSON; the service's stored status is left alone",
    )
    mode.add_argument(
        "--status",
        action="store_true",
        help="print the running service's stored status and its age (read-only; exit 3 if stale)",
    )
    mode.add_argument("--check", action="store_true", help="only validate the configuration")
    p.set_defaults(func=_cmd_guard)

    p = sub.add_parser("record", help="motion recorder of one camera: keep only person/vehicle video")
    p.add_argument("--config", default="/etc/cllmh/recorder.yaml")
    p.add_argument("--camera", help="camera name from the configuration")
    p.add_argument("--check", action="store_true", help="only validate the configuration")
    p.add_argument("--realtime", action="store_true", help="read a file source at its own pace (tests)")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser(
        "report", help="send heartbeats and kept events to head office through the on-disk outbox"
    )
    p.add_argument("--config", default="/etc/cllmh/report.yaml")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration and load the certificates; send nothing",
    )
    mode.add_argument("--outbox", action="store_true", help="list the messages waiting in the outbox (JSON)")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser(
        "firstboot",
        help="first boot of a flashed image: this box's secrets, SSH host keys, site file, disk size",
    )
    p.add_argument("--site-file", default="/boot/firmware/cllmh-site.txt")
    p.add_argument(
        "--root", default="/", help="the box's root directory (another one: no growing, no Wi-Fi start)"
    )
    p.set_defaults(func=_cmd_firstboot)
    central_cli.add_parser(sub)
    status_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
