"""A real head office for tests: gunicorn running `cllmh.central` on a unix socket behind a real
nginx with mTLS (fleet CA + CRL from tests/pki.py), the nginx server block RENDERED FROM THE
central_api ROLE'S TEMPLATE (so a test checks the config that ships), wrapped in a minimal
top-level nginx.conf. Sites are enrolled through the real CLI (`cllmh central site add`).

`stop_api()` / `start_api()` stop and start gunicorn only: nginx then answers 502, as in
production when the service dies. Both access logs carry each request's Idempotency-Key, so a test
can count what reached head office (nginx) and what the API answered (gunicorn).

`relay=True` puts a byte relay between nginx and gunicorn (a unix socket each side): it passes
every byte unchanged, except that after `hold_next_event()` it keeps back the API's answer to the
next POST of an event (the API has stored it) until `release()`: an answer lost in flight, for a
test that kills the reporter in exactly that moment.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2

from cllmh.central.store import Site, Store
from conftest import need, run_cllmh
from pki import FleetCA, Issued

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles/central_api/templates/etc/nginx/conf.d/cllmh-central.conf.j2"

NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    # As Debian's /etc/nginx/nginx.conf, which the role's server block is included into.
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format cllmh '$msec $status $request_method $uri $http_idempotency_key';
    access_log {d}/nginx-access.log cllmh;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/cllmh-central.conf;
}}
"""
# gunicorn's access log: method, path, status, Idempotency-Key.
GUNICORN_LOG_FORMAT = "%(m)s %(U)s %(s)s %({idempotency-key}i)s"


@dataclass(frozen=True)
class Logged:
    """One request in an access log."""

    status: int
    method: str
    path: str
    key: str
    at: float = 0.0  # nginx's log only (unix seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, condition: Callable[[], bool], limit_s: float = 60.0) -> None:
    """Poll until `condition` holds; raise naming `what` if it never does (a hang guard, not a timing)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting for: {what}")
        time.sleep(0.05)


def connectable(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(str(path)) == 0


def render_role_template(template: Path, **variables: object) -> str:
    """One of the central_api role's templates rendered with Ansible's core filters."""
    from ansible.plugins.filter.core import FilterModule  # noqa: PLC0415 (only the templates need it)

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(FilterModule().filters())
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in str(text).splitlines())
    return env.from_string(template.read_text(encoding="utf-8")).render(
        ansible_managed="Ansible managed (rendered by tests/headoffice.py)", **variables
    )


def render_server_block(**variables: object) -> str:
    """The role's nginx template rendered as Ansible would; the dashboard off unless given."""
    dashboard = {
        "central_api_dashboard_enabled": False,
        "central_api_dashboard_dir": "/nonexistent",
        "__central_api_live_origins": [],
    }
    return render_role_template(TEMPLATE, **{**dashboard, **variables})


class Relay:
    """Unix socket to unix socket, one thread pair per connection (nginx opens one per request)."""

    def __init__(self, listen: Path, upstream: Path) -> None:
        self.listen, self.upstream = listen, upstream
        self.hold = False
        self.holding = threading.Event()
        self.released = threading.Event()
        self.held_request = b""
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(listen))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def hold_next_event(self) -> None:
        self.holding.clear()
        self.released.clear()
        self.hold = True

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        api = socket.socket(socket.AF_UNIX)
        try:
            api.connect(str(self.upstream))
        except OSError:  # the API is down: nginx answers 502
            client.close()
            api.close()
            return
        first = client.recv(65536)
        hold = self.hold and first.startswith(b"POST /api/v1/site/events")
        if hold:
            self.hold = False
        threading.Thread(target=self._pump, args=(client, api, first), daemon=True).start()
        answer = b""
        try:
            while chunk := api.recv(65536):
                answer += chunk
        except OSError:
            pass
        if hold:
            self.held_request = first
            self.holding.set()
            self.released.wait(60)
        try:
            client.sendall(answer)
        except OSError:
            pass
        finally:
            client.close()
            api.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, first: bytes) -> None:
        try:
            sink.sendall(first)
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass


class HeadOffice:
    """Started by `head_office()`; `url` is what a site's reporter is configured with."""

    def __init__(  # noqa: PLR0917
        self,
        directory: Path,
        fleet: FleetCA,
        port: int,
        relay: bool,
        dashboard: Path | None = None,
        live_origins: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.dashboard = dashboard  # a built dashboard (make dashboard) served beside /api/
        self.live_origins = live_origins
        self.fleet = fleet
        self.port = port
        self.url = f"https://localhost:{port}"
        self.database = directory / "central.sqlite3"
        self.config = directory / "central.yaml"
        self.socket = directory / "api.sock"
        self.relay = Relay(directory / "relay.sock", self.socket) if relay else None
        self.gunicorn: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None

    # -- processes ---------------------------------------------------------------------------
    def start_api(self) -> None:
        assert self.gunicorn is None, "the API runs already"
        env = {
            **os.environ,
            "CLLMH_CENTRAL_CONFIG": str(self.config),
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        with open(self.directory / "gunicorn.log", "ab") as log:
            self.gunicorn = subprocess.Popen(
                [
                    sys.executable, "-m", "gunicorn",
                    "--bind", f"unix:{self.socket}",
                    "--workers", "2",
                    "--access-logfile", str(self.directory / "gunicorn-access.log"),
                    "--access-logformat", GUNICORN_LOG_FORMAT,
                    "cllmh.central.app:create_app()",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        self._wait_up("gunicorn", self.gunicorn, lambda: connectable(self.socket))

    def stop_api(self) -> None:
        """gunicorn stops (its socket goes): nginx answers 502 until `start_api()`."""
        assert self.gunicorn is not None, "the API is not running"
        _stop(self.gunicorn)
        self.gunicorn = None
        self.socket.unlink(missing_ok=True)

    def _wait_up(self, what: str, process: subprocess.Popen, check: Callable[[], bool]) -> None:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}; see {self.directory}")
            return check()

        wait_for(f"{what} up", up, 30)

    def start_nginx(self, nginx: str, server: Issued, crl: Path) -> None:
        d = self.directory
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir(exist_ok=True)
        (d / "cllmh-central.conf").write_text(
            render_server_block(
                __central_api_socket=self.relay.listen if self.relay else self.socket,
                central_api_listen_port=f"127.0.0.1:{self.port}",
                central_api_server_name="localhost",
                central_api_tls_certificate=server.cert,
                central_api_tls_key=server.key,
                central_api_fleet_ca=self.fleet.cert_path,
                central_api_fleet_crl=crl,
                __central_api_nginx_crl=crl,  # the role installs a copy for nginx; here the file itself
                central_api_max_body="2m",
                central_api_dashboard_enabled=self.dashboard is not None,
                central_api_dashboard_dir=self.dashboard or "/nonexistent",
                __central_api_live_origins=list(self.live_origins),
            ),
            encoding="utf-8",
        )
        conf = d / "nginx.conf"
        # Workers run as nobody unless told otherwise: as root they must reach the test's socket.
        conf.write_text(
            NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", d=d), encoding="utf-8"
        )
        command = [nginx, "-p", str(d), "-e", str(d / "nginx-error.log"), "-c", str(conf)]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered config:\n{checked.stderr}")
        self.nginx = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        self._wait_up("nginx", self.nginx, listening)

    def close(self) -> None:
        for process in (self.nginx, self.gunicorn):
            if process is not None:
                _stop(process)
        if self.relay is not None:
            self.relay.close()

    # -- head office's side of things ------------------------------------------------------------
    def central(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`cllmh central --config ... ARGS`, as an operator runs it."""
        done = run_cllmh("central", "--config", str(self.config), *args)
        if done.returncode != 0:
            raise RuntimeError(f"cllmh central {' '.join(args)}: {done.stderr}")
        return done

    def enroll(self, site: str) -> None:
        self.central("site", "add", site)

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store(self.database)
        try:
            yield store
        finally:
            store.close()

    def site(self, name: str) -> Site | None:
        with self.store() as store:
            return store.site(name)

    def event_ids(self, site: str) -> list[str]:
        """Every event id central holds for `site` (one row per stored event)."""
        with self.store() as store:
            return [
                r[0] for r in store.db.execute("SELECT id FROM events WHERE site = ? ORDER BY id", (site,))
            ]

    def keys(self, site: str) -> dict[str, str]:
        """The idempotency keys central keeps for `site`: key -> SHA-256 of the body first sent with it."""
        with self.store() as store:
            rows = store.db.execute("SELECT key, body_sha256 FROM idempotency WHERE site = ?", (site,))
            return {r[0]: r[1] for r in rows}

    def api_log(self) -> list[Logged]:
        """What gunicorn answered, in order."""
        path = self.directory / "gunicorn-access.log"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [Logged(int(s), m, p, k) for m, p, s, k in (line.split() for line in lines)]

    def nginx_log(self) -> list[Logged]:
        """What nginx answered (502 while the API is down), in order."""
        path = self.directory / "nginx-access.log"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        parsed = (re.split(r" ", line) for line in lines)
        return [Logged(int(s), m, p, k, float(t)) for t, s, m, p, k in parsed]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def head_office(
    directory: Path,
    fleet: FleetCA,
    *,
    server: Issued | None = None,
    crl: Path | None = None,
    relay: bool = False,
    dashboard: Path | None = None,
    live_origins: tuple[str, ...] = (),
    config: str = "",
) -> Iterator[HeadOffice]:
    """nginx + gunicorn up; `server`: head office's certificate (default: one of the fleet CA for
    localhost); `crl`: the fleet CA's CRL (default: a fresh one); `dashboard`: a built dashboard to
    serve (its settings: `config.json` in it, as the role writes them), `live_origins` for its CSP;
    `config`: more YAML for central.yaml."""
    nginx = need("nginx")
    directory.mkdir(parents=True, exist_ok=True)
    office = HeadOffice(directory, fleet, free_port(), relay, dashboard, live_origins)
    (directory / "secret").write_text("test secret\n", encoding="utf-8")
    office.config.write_text(
        f"database: {office.database}\nsecret_key_file: {directory / 'secret'}\ntrust_proxy_headers: true\n"
        + config,
        encoding="utf-8",
    )
    try:
        office.central("site", "list")  # creates the database
        office.start_api()
        office.start_nginx(nginx, server or fleet.server("localhost", "127.0.0.1"), crl or fleet.crl())
        yield office
    finally:
        office.close()
