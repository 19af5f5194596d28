#!/usr/bin/env python3
"""A site as the hub sees it: numbered RFC 5424 lines, octet-counted, over TLS with the site's
client certificate, carrying CLLMH's structured data (site, severity, MikroTik topic)."""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import time
from datetime import UTC, datetime

SD_ID = "cllmh@32473"
CHUNK_BYTES = 65536
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def line(args: argparse.Namespace, number: int) -> bytes:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    pri = 16 * 8 + SEVERITIES.index(args.severity)  # local0
    topic = f' topic="{args.topic}"' if args.topic else ""
    sd = f'[{SD_ID} site="{args.site}" sev="{args.severity}"{topic}]'
    head = f"<{pri}>1 {stamp} {args.host} {args.program} - - {sd} {args.tag} ".encode()
    data = (
        head
        + args.payload.encode()
        + (b"\xff\xfe " if args.invalid_utf8 else b"")
        + f"n={number:06d}".encode()
    )
    return str(len(data)).encode() + b" " + data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="mol-log-hub")
    parser.add_argument("--port", type=int, default=6514)
    parser.add_argument("--site", default="toko-uji")
    parser.add_argument("--host", default="nvr-1")
    parser.add_argument("--program", default="hikvision-nvr")
    parser.add_argument("--severity", default="info", choices=SEVERITIES)
    parser.add_argument("--topic", default="")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="lines per second; 0: as fast as possible")
    parser.add_argument("--payload", default="", help="text before the number (end it with a space)")
    parser.add_argument(
        "--invalid-utf8", action="store_true", help="bytes that are not UTF-8 before the number"
    )
    parser.add_argument("--dir", default="/etc/cllmh/pki", help="the site's fleet identity (role fleet_ca)")
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=f"{args.dir}/ca.crt")
    context.load_cert_chain(f"{args.dir}/host.crt", f"{args.dir}/host.key")
    with (
        socket.create_connection((args.server, args.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=args.server) as tls,
    ):
        # Debian 12's syslog-ng 3.38 names the peer (${.tls.x509_cn}) only for data read after its side
        # of the handshake: a line sent with the handshake's last flight may be filed under `unknown`
        # (README, identity). A site's syslog-ng writes on a connection that is long up; so does this.
        tls.sendall(line(argparse.Namespace(**{**vars(args), "tag": "warm-up"}), 0))
        time.sleep(1)
        if args.rate > 0:
            for number in range(args.first, args.first + args.count):
                tls.sendall(line(args, number))
                time.sleep(1 / args.rate)
        else:  # as fast as possible: many lines per TLS record
            chunk = bytearray()
            for number in range(args.first, args.first + args.count):
                chunk += line(args, number)
                if len(chunk) >= CHUNK_BYTES:
                    tls.sendall(chunk)
                    chunk.clear()
            tls.sendall(chunk)
        with contextlib.suppress(OSError):  # close_notify, so the hub sees an orderly end
            tls.unwrap()


if __name__ == "__main__":
    main()
