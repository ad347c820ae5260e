"""A sweep that survives its process: SIGTERM, SIGINT and kill -9, then --resume or --fresh.

Each test drives the CLI as a subprocess and stops it in the middle of trial 2's training.
"""

import os
import shlex
import signal
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from conftest import CACHE, ROOT, run_cli, tiny_series_spec, write_spec

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow

EPOCHS = 6


def _spec(tmp_path, max_trials=3):
    spec = tiny_series_spec(max_trials=max_trials, max_epochs=EPOCHS)
    spec["early_stopping"] = {"patience": 0}  # every trial trains all its epochs: time to stop it
    return write_spec(tmp_path, spec)


def _args(tmp_path, *extra):
    return ["sweep", "spec.yaml", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow/mlflow.db",
            "--output", "exports", "--cache-dir", str(CACHE), *extra]


def _stop_during_trial_2(tmp_path, signum, *extra):
    """Run a sweep and send ``signum`` once trial 2 has trained 2 of its epochs."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "lstm_models", *_args(tmp_path, *extra)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"    epoch 2/{EPOCHS}") and any(s.startswith("[trial 2/") for s in seen):
            os.kill(proc.pid, signum)
            break
    rest, err = proc.communicate(timeout=300)
    return proc.returncode, "".join(seen) + rest, err


def _runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = {r.info.run_name.split()[0]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return parents, trials


def _trained(run):
    return {k: v for k, v in run.data.metrics.items() if not k.startswith("test_")}


def test_sigterm_stops_at_once_and_resume_runs_the_lost_trial_again(tmp_path):
    _spec(tmp_path)
    code, out, err = _stop_during_trial_2(tmp_path, signal.SIGTERM)
    assert code == 143, err[-2000:]
    assert "[trial 3/3]" not in out
    resume = err.strip().splitlines()[-1].strip()
    assert resume == shlex.join([sys.executable, "-m", "lstm_models", *_args(tmp_path), "--resume"])
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    (parent,), trials = _runs(tmp_path)
    assert parent.info.status == "KILLED"
    assert {k: r.info.status for k, r in trials.items()} == {"trial-01": "FINISHED", "trial-02": "KILLED"}
    first = trials["trial-01"]

    refused = run_cli(*_args(tmp_path), cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "lstm-models: error: runs/tiny-sunspots: a sweep of tiny-sunspots exists already (2 of 3 trials "
        f"(1 finished, 1 killed), parent run {parent.info.run_id}). Continue it with --resume, or start a new "
        "sweep with --fresh (its runs stay in MLflow).")

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(shlex.split(resume), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (f"resuming sweep tiny-sunspots (parent run {parent.info.run_id}): 2 trials kept (1 of 3 counted), "
            "1 finished; 1 lost with its process, run again first") in done.stdout
    assert "[trial 1/" not in done.stdout and "[trial 2/" not in done.stdout
    assert "[trial 3/4] " in done.stdout and "(runs trial-02 again: it was lost with its process)" in done.stdout
    assert "[trial 4/4] " in done.stdout
    assert "4 trials (0 failed, 1 lost with its process and run again)" in done.stdout
    (again,), trials = _runs(tmp_path)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags["resumed"] == "1" and "error" not in again.data.tags
    assert {k: r.info.status for k, r in trials.items()} == {
        "trial-01": "FINISHED", "trial-02": "KILLED", "trial-03": "FINISHED", "trial-04": "FINISHED"}
    assert trials["trial-02"].data.tags["lost"] == "true" and "lost" not in trials["trial-03"].data.tags
    assert trials["trial-03"].data.params == trials["trial-02"].data.params  # the same configuration, run again
    assert sum(r.info.status == "FINISHED" for r in trials.values()) == 3  # == max_trials
    kept = trials["trial-01"]
    assert (kept.info.run_id, kept.info.end_time, _trained(kept)) == (
        first.info.run_id, first.info.end_time, _trained(first))  # untouched (test metrics come at the end)


def test_resume_closes_a_trial_the_oracle_ended_whose_process_died_before_its_run_did(tmp_path):
    """A process killed inside a trial's end, after Keras Tuner saved the trial COMPLETED but before
    the run and the state file said so: --resume closes that run FINISHED with the oracle's score.
    It crashed with MLflow's traceback (its epochs written to no run), and closed the trial FAILED."""
    import json

    _spec(tmp_path)
    code, _, err = _stop_during_trial_2(tmp_path, signal.SIGTERM)
    assert code == 143, err[-2000:]
    (parent,), trials = _runs(tmp_path)
    first = trials["trial-01"]
    state_file = tmp_path / "runs" / "tiny-sunspots" / "sweep.json"
    state = json.loads(state_file.read_text())
    record = state["trials"][first.info.run_id]
    score, best_epoch = record["objective"], record["best_epoch"]
    record.update(status="RUNNING", objective=None, best_epoch=None)  # as the kill left it
    state_file.write_text(json.dumps(state))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    client.update_run(first.info.run_id, status="RUNNING")

    done = run_cli(*_args(tmp_path), "--resume", cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"-> FINISHED: val_rmse {score:.4f}" in done.stdout
    assert "2 trials kept (1 of 3 counted), 1 finished; 1 lost with its process, run again first" in done.stdout
    (_, trials) = _runs(tmp_path)
    closed = trials["trial-01"]
    assert closed.info.status == "FINISHED" and closed.data.metrics["final_val_rmse"] == pytest.approx(score)
    assert closed.data.metrics["best_epoch"] == best_epoch
    assert sum(r.info.status == "FINISHED" for r in trials.values()) == 3  # it counts: one new trial after the rerun
    saved = json.loads(state_file.read_text())["trials"][first.info.run_id]
    assert (saved["status"], saved["objective"]) == ("FINISHED", pytest.approx(score))


def test_kill_9_then_resume_marks_the_dead_trial_lost_and_runs_it_again(tmp_path):
    _spec(tmp_path)
    code, _, _ = _stop_during_trial_2(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    (parent,), trials = _runs(tmp_path)
    assert parent.info.status == "RUNNING" and trials["trial-02"].info.status == "RUNNING"  # nobody closed them
    first = trials["trial-01"]

    done = run_cli(*_args(tmp_path, "--resume"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 trials kept (1 of 3 counted), 1 finished; 1 lost with its process, run again first" in done.stdout
    (again,), trials = _runs(tmp_path)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert sorted(trials) == ["trial-01", "trial-02", "trial-03", "trial-04"]
    assert trials["trial-02"].info.status == "FAILED" and trials["trial-02"].data.tags["lost"] == "true"
    assert trials["trial-02"].data.tags["error"].startswith("the process running this trial stopped")
    assert trials["trial-03"].data.params == trials["trial-02"].data.params  # the lost trial, run again
    assert [trials[k].info.status for k in ("trial-03", "trial-04")] == ["FINISHED", "FINISHED"]
    assert sum(r.info.status == "FINISHED" for r in trials.values()) == 3  # == max_trials: no trial lost
    kept = trials["trial-01"]
    assert (kept.info.status, kept.info.end_time, _trained(kept)) == ("FINISHED", first.info.end_time, _trained(first))
    assert "4 trials (0 failed, 1 lost with its process and run again) in" in done.stdout  # with those from before


def test_sigint_exits_130_and_fresh_starts_a_new_sweep_keeping_the_old_runs(tmp_path):
    _spec(tmp_path)
    code, _, err = _stop_during_trial_2(tmp_path, signal.SIGINT)
    assert code == 130 and "interrupted by SIGINT" in err and err.rstrip().endswith("--resume")
    (old,), _ = _runs(tmp_path)

    done = run_cli(*_args(tmp_path, "--fresh", "--max-trials", "1"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("starting a fresh sweep: the previous one (2 of 3 trials (1 finished, 1 killed), parent run "
            f"{old.info.run_id}) is replaced; its runs stay in MLflow") in done.stdout
    parents, _ = _runs(tmp_path)
    status = {p.info.run_id: p.info.status for p in parents}
    assert len(status) == 2 and status.pop(old.info.run_id) == "KILLED"
    assert list(status.values()) == ["FINISHED"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    children = [(r.data.tags["mlflow.parentRunId"] == old.info.run_id, r.info.run_name.split()[0], r.info.status)
                for r in client.search_runs([old.info.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert sorted(children) == [(False, "trial-01", "FINISHED"),
                                (True, "trial-01", "FINISHED"), (True, "trial-02", "KILLED")]


def test_two_sweeps_write_one_new_store_at_once_and_agree_exactly(tmp_path):
    """Concurrent writers on one SQLite store; and, same spec and seed, the same trials and metrics."""
    write_spec(tmp_path, tiny_series_spec(max_trials=2, max_epochs=2))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "lstm_models", *_args(tmp_path, "--workdir", f"runs-{i}",
                                                                             "--output", f"exports-{i}")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    parents, _ = _runs(tmp_path)
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}
    sweeps = []
    for parent in parents:
        children = sorted(
            (r for r in client.search_runs([parent.info.experiment_id])
             if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id), key=lambda r: r.info.run_name)
        assert [(r.info.run_name[:8], r.info.status) for r in children] == [("trial-01", "FINISHED"),
                                                                           ("trial-02", "FINISHED")]
        sweeps.append([(r.info.run_name, r.data.params,
                        [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, "val_rmse")],
                        {k: v for k, v in r.data.metrics.items()  # not the clock's, nor the machine's load
                         if k not in ("epoch_seconds", "seconds_per_epoch") and not k.startswith(("system/", "time/"))})
                       for r in children])
    assert sweeps[0] == sweeps[1]  # exactly: hyperparameters, per-epoch and final metrics
    assert len(client.search_model_versions("name='tiny-sunspots'")) == 2
