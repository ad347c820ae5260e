"""The start checks of a sweep: every refusal (exit 2, one line, nothing changed), and --fresh after kill -9.

One sweep is started through the CLI and killed (kill -9) during trial 2; each test works on its
own copy of that folder. The copies track in the default, relative ``sqlite:///mlflow/mlflow.db``,
so the tracking URI recorded in the sweep's state is the same in every copy.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import CACHE, ROOT, run_cli, tiny_series_spec, write_spec

pytestmark = pytest.mark.slow

EPOCHS = 4
SWEEP = os.path.join("runs", "tiny-sunspots")  # as the CLI names it, relative to its working folder
ABANDONED = "abandoned: replaced by a fresh sweep (--fresh) while this run was still open"


def _args(*extra):
    return ["sweep", "spec.yaml", "--cache-dir", str(CACHE), *extra]


def _client(folder):
    return MlflowClient(f"sqlite:///{folder}/mlflow/mlflow.db")


def _runs(folder):
    client = _client(folder)
    runs = client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, trials


def _store(folder):
    """Every run of the store as it stands: id, status, end time, tags, metrics."""
    parents, trials = _runs(folder)
    return sorted((r.info.run_id, r.info.status, r.info.end_time, sorted(r.data.tags.items()),
                   sorted(r.data.metrics.items())) for r in parents + trials)


def _sweep_files(folder):
    """The sweep folder's files and their bytes; the lock file is rewritten by every probe of it."""
    root = folder / SWEEP
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "lock"}


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A sweep killed (SIGKILL) during trial 2: trial 1 FINISHED, trial 2 and the parent left RUNNING."""
    base = tmp_path_factory.mktemp("killed")
    spec = tiny_series_spec(max_trials=3, max_epochs=EPOCHS)
    spec["search"].update(units=[4], depth=1)
    spec["early_stopping"] = {"patience": 0}  # every trial trains all its epochs: time to kill it
    write_spec(base, spec)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "lstm_models", *_args()], cwd=base, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"    epoch 2/{EPOCHS}") and any(s.startswith("[trial 2/") for s in seen):
            os.kill(proc.pid, signal.SIGKILL)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-2000:] + err[-2000:]
    (parent,), trials = _runs(base)
    assert parent.info.status == "RUNNING"
    assert sorted((r.info.run_name.split()[0], r.info.status) for r in trials) == [
        ("trial-01", "FINISHED"), ("trial-02", "RUNNING")]  # nobody closed them
    return base


def _copy(base, dest):
    shutil.copytree(base, dest, dirs_exist_ok=True)
    return dest


def _refused(folder, *args):
    """Run the CLI, which must refuse with exit 2 and one line, changing nothing; return that line."""
    files, store = _sweep_files(folder), _store(folder)
    db = (folder / "mlflow" / "mlflow.db").read_bytes()
    exports = sorted(p.relative_to(folder) for p in folder.glob("exports/**/*"))
    proc = run_cli(*_args(*args), cwd=folder)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert _sweep_files(folder) == files  # sweep.json and Keras Tuner's project: byte for byte
    assert _store(folder) == store  # no new run, none changed
    assert (folder / "mlflow" / "mlflow.db").read_bytes() == db
    assert sorted(p.relative_to(folder) for p in folder.glob("exports/**/*")) == exports  # none written
    return lines[0]


def _state(folder):
    return json.loads((folder / SWEEP / "sweep.json").read_text(encoding="utf-8"))


def test_a_plain_run_on_an_existing_sweep_is_refused(killed, tmp_path):
    folder = _copy(killed, tmp_path)
    parent = _state(folder)["parent_run_id"]
    assert _refused(folder) == (
        f"lstm-models: error: {SWEEP}: a sweep of tiny-sunspots exists already (2 of 3 trials (1 finished, "
        f"1 running), parent run {parent}). Continue it with --resume, or start a new sweep with --fresh "
        "(its runs stay in MLflow).")


def test_resume_with_a_changed_spec_is_refused(killed, tmp_path):
    folder = _copy(killed, tmp_path)
    spec = yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8"))
    spec["search"]["units"] = [4, 8]
    write_spec(folder, spec)
    assert _refused(folder, "--resume") == (
        f"lstm-models: error: {SWEEP}: the spec changed since this sweep started (search.units: 4 -> [4, 8]); "
        "resume with the same spec and flags, or start a new sweep with --fresh")


def test_resume_on_changed_data_is_refused(killed, tmp_path):
    """Data edited between the stop and --resume (a CSV's labels renamed: trials of one sweep would
    index different classes) is told by its fingerprint, recorded when the sweep started."""
    folder = _copy(killed, tmp_path)
    state = _state(folder)
    recorded, state["data"] = state["data"], "0123456789abcdef"
    assert len(recorded) == 16
    (folder / SWEEP / "sweep.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    assert _refused(folder, "--resume") == (
        f"lstm-models: error: {SWEEP}: the data changed since this sweep started (fingerprint 0123456789abcdef, "
        f"now {recorded}); resume with the data it started with, or start a new sweep with --fresh")


def test_resume_with_workers_of_a_sweep_that_ran_in_one_process_is_refused(killed, tmp_path):
    folder = _copy(killed, tmp_path)
    assert _refused(folder, "--resume", "--workers", "2") == (
        f"lstm-models: error: --resume: the sweep in {SWEEP} ran in one process; resume it without --workers, "
        "or start a new sweep with --fresh")


def test_resume_with_another_tracking_uri_is_refused(killed, tmp_path):
    folder = _copy(killed, tmp_path)
    assert _refused(folder, "--resume", "--tracking-uri", "sqlite:///elsewhere/mlflow.db") == (
        f"lstm-models: error: {SWEEP}: this sweep is tracked in sqlite:///mlflow/mlflow.db, not "
        "sqlite:///elsewhere/mlflow.db; resume it with --tracking-uri sqlite:///mlflow/mlflow.db")
    assert not (folder / "elsewhere").exists()  # the other store was not created either


def test_resume_with_a_corrupt_state_file_is_refused(killed, tmp_path):
    folder = _copy(killed, tmp_path)
    (folder / SWEEP / "sweep.json").write_text('{"name": "tiny-sunspots", ', encoding="utf-8")
    assert _refused(folder, "--resume") == (
        f"lstm-models: error: {os.path.join(SWEEP, 'sweep.json')}: unreadable sweep state (Expecting property "
        "name enclosed in double quotes: line 1 column 27 (char 26)); start again with --fresh")


def test_resume_with_a_damaged_keras_tuner_file_is_refused(killed, tmp_path):
    """Our writes replace a file whole; an empty one (a sweep of an earlier lstm-models killed in
    mid-write, a full disk) is named, instead of Keras Tuner's reload stopping on a bare JSONDecodeError."""
    folder = _copy(killed, tmp_path)
    trial = os.path.join(SWEEP, "tuner", "trial_1", "trial.json")
    assert json.loads((folder / trial).read_text(encoding="utf-8"))["status"] == "RUNNING"  # the killed trial
    (folder / trial).write_text("", encoding="utf-8")
    assert _refused(folder, "--resume") == (
        f"lstm-models: error: {trial}: unreadable Keras Tuner state (Expecting value: line 1 column 1 (char 0)); "
        "start again with --fresh")


@pytest.fixture(scope="module")
def freshened(killed, tmp_path_factory):
    """The killed sweep replaced by ``--fresh --max-trials 1``, run to its end."""
    folder = _copy(killed, tmp_path_factory.mktemp("fresh"))
    old_state = _state(folder)
    (old_parent,), old_trials = _runs(folder)
    done = run_cli(*_args("--fresh", "--max-trials", "1"), cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, done, old_state, old_parent, {r.info.run_name.split()[0]: r for r in old_trials}


def test_fresh_after_kill_9_fails_the_abandoned_runs_and_keeps_the_finished_one(freshened):
    folder, done, old_state, old_parent, old_trials = freshened
    old_id = old_parent.info.run_id
    assert (f"starting a fresh sweep: the previous one (2 of 3 trials (1 finished, 1 running), parent run {old_id}) "
            "is replaced; its runs stay in MLflow") in done.stdout
    assert "[trial 1/1]" in done.stdout and "1 trials (0 failed) in" in done.stdout

    client = _client(folder)
    parents, trials = _runs(folder)
    by_id = {r.info.run_id: r for r in parents + trials}
    old = by_id[old_id]
    assert old.info.status == "FAILED" and old.data.tags["error"] == ABANDONED
    dead = by_id[old_trials["trial-02"].info.run_id]
    assert dead.info.status == "FAILED"
    assert (dead.data.tags["error"], dead.data.tags["status"]) == (ABANDONED, "FAILED")
    kept, before = by_id[old_trials["trial-01"].info.run_id], old_trials["trial-01"]
    assert (kept.info.status, kept.info.end_time, kept.data.metrics, kept.data.tags) == (
        "FINISHED", before.info.end_time, before.data.metrics, before.data.tags)  # untouched

    (new,) = [p for p in parents if p.info.run_id != old_id]
    assert len(parents) == 2 and new.info.status == "FINISHED" and "error" not in new.data.tags
    children = sorted((r.data.tags["mlflow.parentRunId"], r.info.run_name.split()[0], r.info.status) for r in trials)
    assert children == sorted([(old_id, "trial-01", "FINISHED"), (old_id, "trial-02", "FAILED"),
                               (new.info.run_id, "trial-01", "FINISHED")])
    assert len(client.search_model_versions("name='tiny-sunspots'")) == 1

    state = _state(folder)
    assert (state["parent_run_id"], state["status"], state["spec"]["tuner"]["max_trials"]) == (
        new.info.run_id, "finished", 1)
    assert old_state["parent_run_id"] == old_id
    (record,) = state["trials"].values()
    assert (record["number"], record["status"]) == (1, "FINISHED")
    assert record["run_id"] not in (r.info.run_id for r in old_trials.values())
    assert sorted(p.name for p in (folder / SWEEP / "tuner").glob("trial_*")) == ["trial_0"]  # the old project went


def test_resuming_a_sweep_that_finished_is_refused(freshened, tmp_path):
    folder = _copy(freshened[0], tmp_path)
    parent = _state(folder)["parent_run_id"]
    assert _refused(folder, "--resume") == (
        f"lstm-models: error: {SWEEP}: the sweep of tiny-sunspots finished already (1 of 1 trials (1 finished), "
        f"parent run {parent}); nothing to resume. Start a new sweep with --fresh.")
