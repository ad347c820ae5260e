"""Several hosts: a chief (--chief) and workers (--worker) that share no folder, only the tracking store."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lstm_models.tracking.server import free_port, mlflow_command, wait_healthy

from conftest import CACHE, ROOT, tiny_series_spec, write_spec
from test_tracking_server import _start, _stop, pg_home  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


SPAWNED: list = []


@pytest.fixture(autouse=True)
def _no_process_left():
    """A failed test must not leave a worker waiting an hour for its chief."""
    yield
    for proc in SPAWNED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    SPAWNED.clear()


def _spawn(cwd: Path, log: str, *args: str) -> subprocess.Popen:
    out = open(cwd / log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "lstm_models", "sweep", "spec.yaml", "--cache-dir", str(CACHE),
                             *args], cwd=cwd, env=ENV, stdout=out, stderr=subprocess.STDOUT, text=True)
    SPAWNED.append(proc)
    return proc


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, path.read_text()[-3000:]
        time.sleep(0.2)


def _spec(tmp_path: Path) -> None:
    # Every trial trains all its 40 epochs: time to kill a process in one (4 of this size's epochs
    # took 0.1 s on a fast day, and the kill landed after the trial's end).
    spec = tiny_series_spec(max_trials=4, max_epochs=40)
    spec["early_stopping"] = {"patience": 0}
    write_spec(tmp_path, spec)


def _runs(uri: str, credentials: tuple[str, str] | None = None):
    if credentials:
        os.environ.update(MLFLOW_TRACKING_USERNAME=credentials[0], MLFLOW_TRACKING_PASSWORD=credentials[1])
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == len(runs) - 1  # every trial under the one parent
    return client, parent, trials


def test_workers_with_their_own_folders_lose_no_trial_to_a_kill_and_the_chief_exports_from_mlflow(tmp_path, pg_home):
    """The tracking server on PostgreSQL, with basic authentication; worker a is killed in mid-trial
    and b runs its trial again; a worker with a wrong password is refused in one line."""
    _spec(tmp_path)
    for name, line in (("creds", "admin:s3cret-Pass1"), ("wrong", "admin:not-it")):
        (tmp_path / name).write_text(line + "\n")
        (tmp_path / name).chmod(0o600)
    port = free_port()
    server, _ = _start(tmp_path, port, pg_home / "pg", "--auth", "--credentials", "creds")
    uri = f"http://127.0.0.1:{port}"
    oracle = f"127.0.0.1:{free_port()}"
    common = ("--tracking-uri", uri, "--worker-timeout", "10s", "--credentials", "creds")
    try:
        chief = _spawn(tmp_path, "chief.log", *common, "--chief", oracle, "--workdir", "chief")
        _wait_for(tmp_path / "chief.log", "chief: oracle on", chief)
        wrong = _spawn(tmp_path, "wrong.log", "--tracking-uri", uri, "--credentials", "wrong", "--worker", oracle,
                       "--workdir", "host-x")
        assert wrong.wait(timeout=120) == 2
        assert (tmp_path / "wrong.log").read_text().strip().splitlines()[-1] == (
            f"lstm-models: error: tracking URI {uri}: the server refused these credentials (HTTP 401); give its "
            "user's with --credentials FILE, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        a = _spawn(tmp_path, "a.log", *common, "--worker", oracle, "--worker-id", "a", "--workdir", "host-a")
        b = _spawn(tmp_path, "b.log", *common, "--worker", oracle, "--worker-id", "b", "--workdir", "host-b")
        _wait_for(tmp_path / "a.log", "a:     epoch 2/40", a)
        os.kill(a.pid, signal.SIGKILL)
        assert chief.wait(timeout=600) == 0, (tmp_path / "chief.log").read_text()[-3000:]
        assert b.wait(timeout=120) == 0 and a.wait() == -9
        out = (tmp_path / "chief.log").read_text()
        assert "s3cret" not in out + (tmp_path / "b.log").read_text()  # the password is in no log
        client, parent, trials = _runs(uri, ("admin", "s3cret-Pass1"))
        assert [a.path for a in client.list_artifacts(parent.info.run_id)][:2] == ["inside", "leaderboard.csv"]
        assert all([a.path for a in client.list_artifacts(r.info.run_id)] == ["checkpoint"]
                   for r in trials if r.info.status == "FINISHED")
        with pytest.raises(Exception, match="401"):
            os.environ["MLFLOW_TRACKING_PASSWORD"] = "not-it"
            MlflowClient(uri).search_experiments()
    finally:
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(key, None)
        assert _stop(server)[0] == 0
    assert "chief: a was not heard of for 10s during trial " in out and "another worker runs it again" in out
    finished = [r for r in trials if r.info.status == "FINISHED"]
    (lost,) = [r for r in trials if r.info.status != "FINISHED"]
    assert sorted(r.info.run_name.split()[0] for r in finished) == ["trial-01", "trial-02", "trial-03", "trial-04"]
    assert (lost.info.status, lost.data.tags["lost"], lost.data.tags["worker"]) == ("FAILED", "true", "a")
    assert lost.data.tags["worker_pid"] == str(a.pid)
    (again,) = [r for r in finished if r.data.tags["trial_id"] == lost.data.tags["trial_id"]]
    assert again.data.params == lost.data.params and again.data.tags["worker"] == "b"
    assert len({json.dumps(r.data.params, sort_keys=True) for r in finished}) == 4
    assert parent.info.status == "FINISHED" and parent.data.tags["oracle_port"] == oracle.split(":")[1]
    # No folder is shared: each worker holds its own trials' checkpoints, the chief fetched those it
    # loaded (the best of each cell) from the runs, where every finished trial logged its checkpoint.
    own = {w: {p.parent.name for p in (tmp_path / f"host-{w}").rglob("checkpoint.weights.h5")} for w in "ab"}
    by_worker = {w: {f"trial_{r.data.tags['trial_id']}" for r in finished if r.data.tags["worker"] == w} for w in "ab"}
    assert own["b"] == by_worker["b"] and own["a"] <= {f"trial_{lost.data.tags['trial_id']}"} | by_worker["a"]
    fetched = {p.parent.name for p in (tmp_path / "chief").rglob("checkpoint.weights.h5")}
    best = {f"trial_{r.data.tags['trial_id']}" for r in finished if "test_rmse" in r.data.metrics}
    assert fetched == best and len(best) == 3  # one per cell, nothing else
    meta = json.loads((tmp_path / "exports" / "tiny-sunspots" / "meta.json").read_text())
    assert f"trial_{int(meta['trial'].split()[0].split('-')[1]) - 1}" in fetched  # exported from a fetched one


def test_a_killed_chief_resumes_and_its_worker_reconnects_without_losing_its_trial(tmp_path):
    _spec(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    oracle = f"127.0.0.1:{free_port()}"
    chief = _spawn(tmp_path, "chief.log", "--tracking-uri", uri, "--chief", oracle)
    _wait_for(tmp_path / "chief.log", "chief: oracle on", chief)
    worker = _spawn(tmp_path, "w.log", "--tracking-uri", uri, "--worker", oracle, "--worker-id", "w",
                    "--workdir", "host-w")
    _wait_for(tmp_path / "w.log", "w: [trial 2/4]", worker)
    os.kill(chief.pid, signal.SIGKILL)
    assert chief.wait() == -9
    again = _spawn(tmp_path, "again.log", "--tracking-uri", uri, "--chief", oracle, "--resume")
    assert again.wait(timeout=600) == 0, (tmp_path / "again.log").read_text()[-3000:]
    assert worker.wait(timeout=120) == 0, (tmp_path / "w.log").read_text()[-3000:]
    out = (tmp_path / "again.log").read_text()
    assert "resuming sweep tiny-sunspots as its chief: 2 trials so far, 1 still with their workers" in out
    _, parent, trials = _runs(uri)
    assert sorted((r.info.run_name.split()[0], r.info.status) for r in trials) == [
        ("trial-01", "FINISHED"), ("trial-02", "FINISHED"), ("trial-03", "FINISHED"), ("trial-04", "FINISHED")]
    assert {r.data.tags["worker"] for r in trials} == {"w"}  # the worker kept its trial through the restart
    assert parent.info.status == "FINISHED" and parent.data.tags["resumed"] == "1"
    assert (tmp_path / "exports" / "tiny-sunspots" / "saved_model.pb").is_file()


def _mlflow_server(tmp_path: Path, port: int) -> subprocess.Popen:
    """The MLflow server `tracking-server` runs, on a SQLite file in ``tmp_path``, in its own process group."""
    proc = subprocess.Popen(mlflow_command(f"sqlite:///{tmp_path}/server.db", "127.0.0.1", port, tmp_path / "art",
                                           auth=False), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    SPAWNED.append(proc)
    wait_healthy(f"http://127.0.0.1:{port}", proc)
    return proc


def test_a_tracking_server_gone_mid_sweep_stops_it_with_one_line_and_resume_finishes_it(tmp_path):
    """It took minutes of MLflow's retries per call, a traceback per failed trial, and went on;
    now the first call that cannot reach the server stops the chief and its local workers, and a
    resumed chief runs their trials again at once (their processes are gone, nothing to wait for)."""
    _spec(tmp_path)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _mlflow_server(tmp_path, port)
    ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "1"  # MLflow's retries, seconds instead of minutes
    try:
        chief = _spawn(tmp_path, "chief.log", "--tracking-uri", uri, "--workers", "2")
        _wait_for(tmp_path / "chief.log", "[trial 2/4]", chief)
        os.killpg(server.pid, signal.SIGKILL)
        assert chief.wait(timeout=300) == 1
    finally:
        ENV.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    out = (tmp_path / "chief.log").read_text()
    lost = f"lstm-models: error: tracking server {uri} stopped answering (Connection refused)"
    errors = [line for line in out.splitlines() if line.startswith("lstm-models:")]
    assert "Traceback" not in out and errors[-1] == (f"{lost}; the sweep stopped, its finished trials kept in "
                                                    f"{Path('runs', 'tiny-sunspots')}. Once it answers, resume with:")
    # the local workers that met it first say so, and nothing else
    assert set(errors[:-1]) <= {f"{lost}; worker-{i} stopped, its chief stops the sweep" for i in (1, 2)}
    assert out.rstrip().endswith("--workers 2 --resume")

    server = _mlflow_server(tmp_path, port)
    try:
        again = _spawn(tmp_path, "again.log", "--tracking-uri", uri, "--workers", "2", "--resume")
        assert again.wait(timeout=600) == 0, (tmp_path / "again.log").read_text()[-3000:]
        assert "resuming sweep tiny-sunspots as its chief: " in (tmp_path / "again.log").read_text()
        assert "0 still with their workers" in (tmp_path / "again.log").read_text()
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
        trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        finished = sorted(r.info.run_name.split()[0] for r in trials if r.info.status == "FINISHED")
        assert finished == ["trial-01", "trial-02", "trial-03", "trial-04"]
        assert all(r.data.tags.get("lost") == "true" for r in trials if r.info.status != "FINISHED")
        assert not [r for r in runs if r.info.status == "RUNNING"]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
