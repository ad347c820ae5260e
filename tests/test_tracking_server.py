"""`lstm-models tracking-server`: a real MLflow server on a real PostgreSQL it starts and stops."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lstm_models.errors import ConfigError
from lstm_models.tracking import server

from conftest import CACHE, ROOT, run_cli, tiny_series_spec, write_spec


def test_db_url_must_be_postgresql_with_host_and_database():
    assert server.sqlalchemy_url("postgresql://u:pw@db.example:5433/runs") == \
        "postgresql+psycopg2://u:pw@db.example:5433/runs"
    for bad in ("sqlite:///x.db", "postgresql://host-only", "postgresql:///db", "postgresql://u@db:54x2/runs",
                "postgresql://u@db:70000/runs"):  # a port urllib cannot read raised its ValueError: a traceback
        with pytest.raises(ConfigError) as info:
            server.sqlalchemy_url(bad)
        assert str(info.value) == f"--db-url {bad}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    with pytest.raises(ConfigError) as info:
        server.sqlalchemy_url("mysql://u:secret@h/db")
    assert "secret" not in str(info.value) and "u:***@h" in str(info.value)  # a password is never printed


def test_a_missing_postgresql_binary_says_how_to_install_it():
    with pytest.raises(ConfigError) as info:
        server.pg_bin("initdb-that-does-not-exist")
    assert str(info.value).startswith("--db-dir: PostgreSQL's initdb-that-does-not-exist not found")
    assert "apt-get install -y postgresql" in str(info.value) and "--db-url" in str(info.value)


@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"], "--host 0.0.0.0: not a loopback address; MLflow's server has no authentication by "
                            "default, so binding it needs --allow-public (on a private network only)"),
    (["--db-url", "sqlite:///x.db"], "--db-url sqlite:///x.db: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/"
                                     "DATABASE"),
    (["--port", "0"], "--port must be in [1, 65535]. Got 0 instead."),
    (["--host", "::1"], "--host ::1: an IPv6 address; give an IPv4 address (127.0.0.1 for this machine only) or a "
                        "host name"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, message):
    done = run_cli("tracking-server", *args, cwd=tmp_path, timeout=60)
    assert (done.returncode, done.stderr.strip()) == (2, f"lstm-models: error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_credentials_come_from_a_file_only_its_owner_reads(tmp_path, monkeypatch):
    path = tmp_path / "creds"
    path.write_text("admin:s3cret:with-colon\n")
    path.chmod(0o600)
    assert server.read_credentials(path) == ("admin", "s3cret:with-colon")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=rf"^--credentials {path}: mode 644 lets others read it; chmod 600 {path}$"):
        server.read_credentials(path)
    path.write_text("no-colon\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"expected one line USER:PASSWORD$"):
        server.read_credentials(path)
    env = server.auth_env(("admin", "pw"), tmp_path / "auth")
    config = (tmp_path / "auth" / "basic_auth.ini").read_text()
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(tmp_path / "auth" / "basic_auth.ini")
    assert (env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"]) == ("admin", "pw")
    assert "pw" not in config and "admin" not in config  # the password never lands in a file
    from mlflow.server.auth.config import read_auth_config

    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", env["MLFLOW_AUTH_CONFIG_PATH"])
    read = read_auth_config()  # as the server reads it: a verified password is cached, not hashed per request
    assert (read.auth_cache_ttl_seconds, read.default_permission) == (server.AUTH_CACHE_SECONDS, "READ")
    assert server.AUTH_CACHE_SECONDS > 0


def test_auth_without_credentials_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    done = subprocess.run([sys.executable, "-m", "lstm_models", "tracking-server", "--auth"], cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr.strip()) == (2, "lstm-models: error: --auth: no credentials; give --credentials "
                                                         "FILE (mode 600, one line USER:PASSWORD), or set "
                                                         "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")


def test_a_port_in_use_and_an_unreachable_database_exit_2(tmp_path):
    port = server.free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        done = run_cli("tracking-server", "--port", str(port), "--db-url", f"postgresql://u@127.0.0.1:{port}/db",
                       cwd=tmp_path, timeout=60)
        assert done.returncode == 2
        assert done.stderr.strip().startswith(f"lstm-models: error: --host/--port 127.0.0.1:{port}: cannot listen")
    closed = server.free_port()
    done = run_cli("tracking-server", "--port", str(server.free_port()), "--db-url", f"postgresql://u@127.0.0.1:{closed}/db",
                   cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"lstm-models: error: --db-url postgresql://u@127.0.0.1:{closed}/db: "
                                          f"cannot reach PostgreSQL at 127.0.0.1:{closed}")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def pg_home():
    """A folder PostgreSQL (run as the user postgres) can enter: pytest's own are private and reset to 0700."""
    home = Path(tempfile.mkdtemp(prefix="lstm-models-test-"))
    home.chmod(0o711)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _start(tmp_path, port, pg, *extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "lstm_models", "tracking-server", "--port", str(port),
                             "--db-dir", str(pg), "--artifacts", "art", *extra], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    proc.lines, proc.errors = lines, errors = [], []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("tracking URI: "):
            # Keep reading both pipes: the server logs every request, and a full pipe would stop it.
            proc.drains = [threading.Thread(target=kept.extend, args=(pipe,), daemon=True)
                           for kept, pipe in ((lines, proc.stdout), (errors, proc.stderr))]
            started = list(lines)  # what it printed up to its URI; the drains add to `lines` from here
            for drain in proc.drains:
                drain.start()
            return proc, started
        assert time.monotonic() < deadline, "".join(lines)
    pytest.fail(f"the server exited: {''.join(lines)}{proc.stderr.read()[-3000:]}")


def _stop(proc):
    """SIGTERM; its exit code and what it printed on stdout."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=90)
    for drain in proc.drains:
        drain.join(timeout=30)
    return proc.returncode, "".join(proc.lines)


@pytest.mark.slow
def test_a_sweep_tracks_to_the_server_which_stops_cleanly_and_keeps_its_database(tmp_path, pg_home):
    port, pg = server.free_port(), pg_home / "pg"
    uri = f"http://127.0.0.1:{port}"
    proc, lines = _start(tmp_path, port, pg)
    try:
        assert lines[-1].strip() == f"tracking URI: {uri}   (lstm-models sweep SPEC --tracking-uri {uri})"
        assert any(line.startswith(f"PostgreSQL: {pg / 'data'} on 127.0.0.1:") for line in lines)
        write_spec(tmp_path, tiny_series_spec(max_trials=1, max_epochs=1))
        done = run_cli("sweep", "spec.yaml", "--tracking-uri", uri, "--cache-dir", str(CACHE), cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
        parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
        assert len(parent) == 1 and parent[0].info.status == "FINISHED"
        assert [r.info.status for r in trials] == ["FINISHED"]
        path = client.download_artifacts(parent[0].info.run_id, "leaderboard.csv", str(tmp_path))
        assert open(path).readline().startswith("trial,cell,status,val_rmse")  # artifacts proxied by the server
        assert list((tmp_path / "art").rglob("leaderboard.csv"))  # ... into --artifacts
    finally:
        code, out = _stop(proc)
    assert code == 0 and out.rstrip().endswith("tracking server stopped: mlflow server and PostgreSQL")
    pg_ctl = server.pg_bin("pg_ctl")
    status = subprocess.run(["runuser", "-u", "postgres", "--", pg_ctl, "-D", str(pg / "data"), "status"]
                            if os.geteuid() == 0 else [pg_ctl, "-D", str(pg / "data"), "status"],
                            capture_output=True, text=True)
    assert status.returncode == 3, status.stdout  # "no server running"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # the MLflow server is gone too

    proc, _ = _start(tmp_path, port, pg)  # the second run reuses the cluster: the sweep is still there
    try:
        client = MlflowClient(uri)
        assert client.get_experiment_by_name("tiny-sunspots") is not None
        again = run_cli("tracking-server", "--port", str(server.free_port()), "--db-dir", str(pg), cwd=tmp_path,
                        timeout=120)  # a second server on the folder in use
        assert again.returncode == 2
        assert re.fullmatch(rf"lstm-models: error: --db-dir {pg}: a PostgreSQL server already runs on it \(server "
                            r"is running \(PID: \d+\): another tracking-server\?\); stop that one first, or give "
                            r"another --db-dir", again.stderr.strip()), again.stderr
        assert client.get_experiment_by_name("tiny-sunspots") is not None  # the first one still serves
    finally:
        assert _stop(proc)[0] == 0
