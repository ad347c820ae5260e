"""`lstm-models tracking-server`: one MLflow tracking server, proxied artifacts, on PostgreSQL.

Several processes writing one SQLite file meet "database is locked"; MLflow's own advice is one
tracking server in front of a SQL database. This module runs that server: ``mlflow server`` as a
subprocess (so nothing here imports mlflow), backed by an existing PostgreSQL database
(``--db-url``) or by a database cluster it creates in a folder with the machine's PostgreSQL
server binaries (``--db-dir``: ``initdb`` on the first run, ``pg_ctl start`` every run). It
waits until ``/health`` answers, and on stop ends the MLflow server and the PostgreSQL it started.

``initdb`` and ``pg_ctl`` refuse to run as root; as root they run as the ``postgres`` user
(``runuser``), and the cluster's folder is handed to that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from lstm_models.errors import ConfigError

DB_NAME = "mlflow"
DB_USER = "mlflow"
HEALTH_TIMEOUT = 120.0


def pg_bin(name: str) -> str:
    """The path of a PostgreSQL server binary, or a `ConfigError` saying how to install it."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True):
        if os.access(Path(folder) / name, os.X_OK):
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found:
        return found
    raise ConfigError(f"--db-dir: PostgreSQL's {name} not found (looked in /usr/lib/postgresql/*/bin and PATH); "
                      "install the server (Debian: apt-get install -y postgresql) or give --db-url postgresql://...")


def _version(folder: str) -> float:
    try:
        return float(Path(folder).parent.name)
    except ValueError:
        return 0.0


def sqlalchemy_url(url: str) -> str:
    """``postgresql://user:pw@host:port/db`` -> the ``postgresql+psycopg2://`` URL MLflow needs.

    Raises:
        ConfigError: anything that is not a PostgreSQL URL with a host and a database.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("postgresql", "postgres", "postgresql+psycopg2") or not parsed.hostname \
            or not parsed.path.strip("/") or not _port_ok(parsed):
        raise ConfigError(f"--db-url {_redact(url)}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    return urllib.parse.urlunsplit(("postgresql+psycopg2",) + tuple(parsed)[1:])


def _port_ok(parsed: urllib.parse.SplitResult) -> bool:
    try:  # urllib checks the port when it is read: a ValueError if it is not a number in 0-65535
        return parsed.port is None or parsed.port >= 0
    except ValueError:
        return False


def _redact(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return urllib.parse.urlunsplit((parsed.scheme, netloc) + tuple(parsed)[2:])
    return url


def check_reachable(db_url: str) -> None:
    """An existing database's host and port must answer, or `ConfigError` naming them."""
    parsed = urllib.parse.urlsplit(db_url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 5432), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"--db-url {_redact(db_url)}: cannot reach PostgreSQL at {parsed.hostname}:"
                          f"{parsed.port or 5432} ({exc.strerror or exc})") from None


def check_port_free(host: str, port: int, what: str, hint: str = "") -> None:
    """Raise `ConfigError` when ``host:port`` cannot be bound (in use, or not an address here): the
    address named ``what`` (the flag that gave it), then ``hint`` (what to do instead)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no refusal
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"{what} {host}:{port}: cannot listen there ({exc.strerror or exc}){hint}") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_ipv4(flag: str, host: str) -> None:
    """IPv6 addresses are refused: the servers and the oracle are reached as ``HOST:PORT``, which
    an IPv6 address would need brackets in, and ports are checked as IPv4 (`check_port_free`)."""
    if ":" in host:
        raise ConfigError(f"{flag} {host}: an IPv6 address; give an IPv4 address (127.0.0.1 for this machine "
                          "only) or a host name")


def is_public(host: str) -> bool:
    """Whether binding ``host`` exposes a port beyond this machine (anything but loopback)."""
    return not (host == "localhost" or host.startswith("127."))


class Postgres:
    """A PostgreSQL database cluster in ``folder``, started on 127.0.0.1:``port``."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = Path(folder).resolve(), port
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def _as_owner(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def _run(self, *cmd: str) -> None:
        done = subprocess.run(self._as_owner(*cmd), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"--db-dir {self.folder}: {Path(cmd[0]).name} failed: {last[0]}")

    def start(self) -> None:
        """``initdb`` on the first run, then ``pg_ctl start``, then the ``mlflow`` database."""
        initdb, pg_ctl, createdb = pg_bin("initdb"), pg_bin("pg_ctl"), pg_bin("createdb")
        data = self.folder / "data"
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            closed = [p for p in self.folder.parents if not os.stat(p).st_mode & 0o001]
            if closed:
                raise ConfigError(f"--db-dir {self.folder}: PostgreSQL runs as the user postgres, who cannot enter "
                                  f"{closed[0]} (mode {oct(os.stat(closed[0]).st_mode & 0o777)}); choose a folder "
                                  "under one others may enter, or chmod o+x it")
            shutil.chown(self.folder, "postgres", "postgres")
        fresh = not (data / "PG_VERSION").exists()
        if not fresh:
            self._check_not_running(pg_ctl, data)
        if fresh:
            self._run(initdb, "-D", str(data), "-A", "trust", "-U", DB_USER, "--encoding", "UTF8")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        self._run(pg_ctl, "-D", str(data), "-o", options, "-l", str(self.folder / "postgres.log"), "-w", "start")
        self.started = True
        if fresh:
            self._run(createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, DB_NAME)

    def _check_not_running(self, pg_ctl: str, data: Path) -> None:
        """Another tracking-server on this folder: ``pg_ctl start`` would fail with "Examine the log
        output", the cause (its ``postmaster.pid``) only in the log."""
        status = subprocess.run(self._as_owner(pg_ctl, "-D", str(data), "status"), capture_output=True, text=True)
        if status.returncode == 0:  # 3: no server running
            running = status.stdout.strip().splitlines()[:1] or ["server is running"]
            raise ConfigError(f"--db-dir {self.folder}: a PostgreSQL server already runs on it "
                              f"({running[0].removeprefix('pg_ctl: ')}: another tracking-server?); stop that one "
                              "first, or give another --db-dir")

    def stop(self) -> None:
        """``pg_ctl stop``; a server already gone (a terminal's Ctrl-C reaches it too) is fine."""
        if self.started:
            self.started = False
            data = str(self.folder / "data")
            status = subprocess.run(self._as_owner(pg_bin("pg_ctl"), "-D", data, "status"), capture_output=True)
            if status.returncode != 3:  # 3: no server running
                self._run(pg_bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = HEALTH_TIMEOUT) -> None:
    """Wait until ``url/health`` answers; `ConfigError` if the server exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"tracking server {url}: mlflow server exited with code {proc.returncode} before "
                              "it answered /health (its output is above)")
        try:
            urllib.request.urlopen(url + "/health", timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise ConfigError(f"tracking server {url}: /health did not answer within {timeout:.0f}s")


def read_credentials(path: Path) -> tuple[str, str]:
    """``USER:PASSWORD`` from the first line of a file only its owner may read (mode 600)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
        line = path.read_text(encoding="utf-8").splitlines()[0].strip() if mode & 0o077 == 0 else ""
    except (OSError, IndexError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--credentials {path}: cannot read it ({getattr(exc, 'strerror', None) or 'empty'})") from None
    if mode & 0o077:
        raise ConfigError(f"--credentials {path}: mode {mode:o} lets others read it; chmod 600 {path}")
    user, sep, password = line.partition(":")
    if not (sep and user and password):
        raise ConfigError(f"--credentials {path}: expected one line USER:PASSWORD")
    return user, password


# MLflow checks the password's scrypt hash on every request unless its own cache of verified
# credentials is on; with it, a changed password or a deleted user is still accepted for up to this
# long by a server worker that did not handle the change (docs/distributed.md: what it costs, measured).
AUTH_CACHE_SECONDS = 60


def auth_env(credentials: tuple[str, str], folder: Path) -> dict[str, str]:
    """The environment of an ``mlflow server --app-name basic-auth``: its config in ``folder`` (its
    user database beside it), the admin's name and password from ``credentials``, never in a file."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = folder / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{(folder / 'basic_auth.db').resolve()}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                      f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n", encoding="utf-8")
    key = folder / "flask_secret_key"  # signs the UI's CSRF tokens; kept so that a restart keeps sessions valid
    if not key.exists():
        import secrets

        key.touch(mode=0o600)
        key.write_text(secrets.token_hex(32), encoding="utf-8")
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_USERNAME": credentials[0],
            "MLFLOW_AUTH_ADMIN_PASSWORD": credentials[1],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": key.read_text(encoding="utf-8").strip()}


def mlflow_command(backend: str, host: str, port: int, artifacts: Path, auth: bool) -> list[str]:
    """The ``mlflow server`` command line: proxied artifacts in ``artifacts``, one host and port."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--serve-artifacts", "--artifacts-destination", str(Path(artifacts).resolve()),
           "--default-artifact-root", "mlflow-artifacts:/", "--host", host, "--port", str(port), "--workers", "2"]
    if is_public(host):
        cmd += ["--allowed-hosts", "*"]
    if auth:
        cmd += ["--app-name", "basic-auth"]
    return cmd


def serve(host: str, port: int, artifacts: Path, db_url: str | None, db_dir: Path | None,
          log: Callable[[str], None], auth: tuple[str, str] | None = None) -> None:
    """Run PostgreSQL (``db_dir``) and the MLflow server until interrupted (SIGINT, SIGTERM).

    Both are stopped on the way out, whatever ends the wait: an interrupt, or the MLflow server
    exiting on its own (then `ConfigError`).

    Args:
        host, port: where the MLflow server listens.
        artifacts: where proxied artifacts are stored.
        db_url: an existing PostgreSQL database; or ``db_dir``: a cluster kept in that folder.
        log: where the lines for the user go.
        auth: (user, password) of MLflow's basic authentication (for more than one host); its
            user database is kept beside ``artifacts``.
    """
    backend = sqlalchemy_url(db_url) if db_url else None
    if backend:
        check_reachable(db_url)
    check_port_free(host, port, "--host/--port")
    postgres = None if backend else Postgres(db_dir, free_port())
    proc = None
    try:
        if postgres is not None:
            postgres.start()
            backend = postgres.url
            log(f"PostgreSQL: {postgres.folder / 'data'} on 127.0.0.1:{postgres.port}")
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(auth_env(auth, Path(artifacts).resolve().parent / "auth") if auth else {})}
        proc = subprocess.Popen(mlflow_command(backend, host, port, Path(artifacts), auth is not None), env=env,
                                start_new_session=True)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        wait_healthy(url, proc)
        log(f"tracking URI: {url}   (lstm-models sweep SPEC --tracking-uri {url})")
        while proc.poll() is None:
            time.sleep(0.2)
        raise ConfigError(f"tracking server {url}: mlflow server exited with code {proc.returncode}")
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        if postgres is not None:
            postgres.stop()
        log("tracking server stopped: mlflow server" + (" and PostgreSQL" if postgres is not None else ""))
