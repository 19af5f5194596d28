"""HTTPS to head office with the site's fleet client certificate; head office's certificate is
verified against the fleet CA (and its name against the URL's host). Standard library only."""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None  # None: no answer (connection, TLS or timeout error)
    detail: str
    json: bool = False  # the answer's body is JSON (the API's own, not a proxy's page)


def client_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Trusts only the fleet CA; presents the site's certificate. Raises OSError/ssl.SSLError if a
    file is missing or does not fit."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class Transport:
    def __init__(self, url: str, context: ssl.SSLContext, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"not an https URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.prefix = parts.path.rstrip("/")
        self.context = context
        self.timeout_s = timeout_s

    def post(self, path: str, key: str, body: bytes) -> Answer:
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout_s
        )
        try:
            connection.request(
                "POST",
                self.prefix + path,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    "User-Agent": "cllmh-report",
                },
            )
            response = connection.getresponse()
            text = response.read(4096).decode("utf-8", "replace")
            is_json = (response.getheader("Content-Type") or "").split(";")[0].strip() == "application/json"
            # One line: a proxy's HTML page (nginx's 502) would otherwise be several journal entries.
            return Answer(response.status, " ".join(text.split())[:300], is_json)
        except ssl.SSLCertVerificationError as exc:
            return Answer(
                None,
                f"head office's certificate is not trusted ({exc.verify_message or exc.reason}): it must be "
                "issued by the fleet CA for this host name; nothing was sent",
            )
        except ssl.SSLError as exc:
            return Answer(None, f"TLS failed: {exc.reason or exc}")
        except (OSError, http.client.HTTPException) as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()
