"""The Keras Tuner adapter (lstm_models.search.tuner): its private hooks, its leak guard, cell
balancing with a fitted Bayesian oracle, and Hyperband and Bayesian sweeps stopped by SIGTERM in a
trial, then resumed (the lost trial runs again first).

The canaries fail loudly when a keras-tuner or TensorFlow release changes a private member the
adapter relies on. The sweeps are driven through the CLI as a user would, as in tests/test_resilience.py.
"""

import inspect
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import keras_tuner as kt
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lstm_models.search import oracle as chief_oracle, tuner
from lstm_models.search.space import sample_spec
from lstm_models.search.state import TUNER_PROJECT
from lstm_models.spec.sweep import parse_sweep

from conftest import CACHE, ROOT, tiny_series_spec, toy_series_splits, write_spec

CHANGED = "keras-tuner changed: lstm_models/search/tuner.py relies on"


# --- canaries: the private members the adapter uses ---

def test_keras_tuner_is_the_version_the_adapter_was_written_for():
    assert kt.__version__ == "1.4.8", (
        f"keras-tuner changed: {kt.__version__} is installed, the adapter was written for 1.4.8; check every "
        "private member lstm_models/search/tuner.py uses, then update this test")


def test_the_oracle_members_the_adapter_uses_are_still_there():
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_rmse", "min"), max_trials=2, seed=5)
    assert isinstance(getattr(oracle, "_retry_queue", None), list), (
        f"{CHANGED} Oracle._retry_queue (a list of the trial ids to run again; requeue_unended sets it)")
    assert type(getattr(oracle, "_seed_state", None)) is int, (
        f"{CHANGED} Oracle._seed_state (an int, the oracle's sampling counter; _BalancedCells draws with it)")


def test_a_reloaded_oracle_runs_the_requeued_trials_first_oldest_first(tmp_path):
    """What requeue_unended relies on: Keras Tuner's reload queues the trials its process left running, and
    create_trial takes the queue's last entry first."""

    def open_tuner():
        oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_rmse", "min"), max_trials=5, seed=5)
        return kt.Tuner(oracle=oracle, hypermodel=lambda hp: hp.Float("dropout", 0.0, 0.5),
                        directory=str(tmp_path), project_name="p")

    first = open_tuner()
    started = [first.oracle.create_trial(f"worker{i}") for i in range(3)]
    first.oracle.update_trial(started[1].trial_id, {"val_rmse": 1.0})
    started[1].status = kt.engine.trial.TrialStatus.COMPLETED
    first.oracle.end_trial(started[1])
    first.save()  # then the process stops: trials 0 and 2 never end

    oracle = open_tuner().oracle
    assert sorted(oracle._retry_queue) == ["0", "2"], f"{CHANGED} Oracle.reload queueing its unended trials"
    assert chief_oracle.requeue_unended(oracle) == {"0", "2"}
    again = [oracle.create_trial(f"worker{i}") for i in range(3)]
    assert [(t.trial_id, t.status) for t in again] == [("0", "RUNNING"), ("2", "RUNNING"), ("3", "RUNNING")], (
        f"{CHANGED} Oracle.create_trial taking the trials of _retry_queue first, from its end")
    assert again[0].hyperparameters.values == started[0].hyperparameters.values


def test_the_project_files_are_replaced_whole_so_a_reader_of_the_old_one_reads_it_all(tmp_path):
    """What a resume after a kill -9 in mid-write needs (tests/test_resilience.py kills a sweep as it
    reports an epoch): each write of trial.json (on every epoch's report), oracle.json and tuner0.json
    puts a new file in place of the old one, which stays whole for whoever holds it open; Keras Tuner's
    own writes truncate the file and rewrite it in place."""
    oracle = type("O", (tuner._WholeTrialFiles, kt.oracles.RandomSearchOracle, tuner._WholeFiles), {})(
        objective=kt.Objective("val_rmse", "min"), max_trials=3, seed=5)
    owner = type("T", (kt.Tuner, tuner._WholeFiles), {})(
        oracle=oracle, hypermodel=lambda hp: hp.Float("dropout", 0.0, 0.5), directory=str(tmp_path), project_name="p")
    project = tmp_path / "p"
    trial = oracle.create_trial("worker0")
    owner.save()
    files = {"trial": project / f"trial_{trial.trial_id}" / "trial.json", "oracle": project / "oracle.json",
             "tuner": project / "tuner0.json"}
    steps = [(lambda: oracle.update_trial(trial.trial_id, {"val_rmse": 2.0}, step=0), {"trial"}),
             (lambda: oracle.update_trial(trial.trial_id, {"val_rmse": 1.5}, step=1), {"trial"}),
             (owner.save, {"oracle", "tuner"})]
    for write, replaced in steps:
        held = {k: open(f, encoding="utf-8") for k, f in files.items()}  # open: their inodes stay theirs
        before = {k: f.read_text(encoding="utf-8") for k, f in files.items()}
        write()
        try:
            assert {k for k, f in files.items() if f.stat().st_ino != os.fstat(held[k].fileno()).st_ino} == replaced, (
                f"{CHANGED} Stateful.save and Oracle._save_trial writing its files")
            assert {k: h.read() for k, h in held.items()} == before  # whole, for whoever held them
        finally:
            for h in held.values():
                h.close()
        assert all(json.loads(f.read_text(encoding="utf-8")) is not None for f in files.values())
    observed = json.loads(files["trial"].read_text(encoding="utf-8"))["metrics"]["metrics"]["val_rmse"]["observations"]
    assert observed == [{"value": [2.0], "step": 0}, {"value": [1.5], "step": 1}]
    assert sorted(p.name for p in project.rglob(".*")) == []  # no temporary file left behind


def test_the_tuner_members_the_adapter_uses_are_still_there(tmp_path):
    for name in ("_build_hypermodel", "_get_checkpoint_fname"):
        assert callable(getattr(kt.Tuner, name, None)), f"{CHANGED} Tuner.{name}"
    source = inspect.getsource(kt.Tuner._try_build)
    assert "self._build_hypermodel(hp)" in source, (
        f"{CHANGED} Tuner._try_build calling self._build_hypermodel(hp) (overridden to build each trial's "
        f"sampled spec and restore a Hyperband parent); its source is now:\n{source}")

    real = kt.Tuner(oracle=kt.oracles.RandomSearchOracle(objective=kt.Objective("val_rmse", "min"), max_trials=1),
                    hypermodel=lambda hp: hp.Int("units", 1, 4), directory=str(tmp_path), project_name="p")
    path = Path(real._get_checkpoint_fname("0003"))
    assert path.parent == Path(real.get_trial_dir("0003")) == tmp_path / "p" / "trial_0003", (
        f"{CHANGED} Tuner._get_checkpoint_fname(trial_id) giving a file in get_trial_dir(trial_id); got {path}")


def test_run_trial_still_hands_its_best_epoch_checkpoint_to_build_and_fit_model():
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    source = inspect.getsource(kt.Tuner.run_trial)
    assert "tuner_utils.SaveBestEpoch(" in source and "self._build_and_fit_model(trial, *args, **copied_kwargs)" in source, (
        f"{CHANGED} Tuner.run_trial creating a tuner_utils.SaveBestEpoch and passing it, in its callbacks, to "
        f"self._build_and_fit_model (overridden to write the checkpoint once); its source is now:\n{source}")
    saver = SaveBestEpoch(kt.Objective("val_rmse", "min"), "x.weights.h5")
    assert (saver.objective.name, saver.filepath) == ("val_rmse", "x.weights.h5"), (
        f"{CHANGED} SaveBestEpoch.objective and .filepath")


def test_the_best_epoch_checkpoint_is_written_once_and_holds_what_keras_tuners_would(tmp_path, seed):
    """Side by side in one fit: Keras Tuner's SaveBestEpoch writes on every better epoch, BestEpoch once
    at the end; both files hold the same best epoch (weights, optimizer state, dropout's random state),
    and the model ends the fit with its last epoch's values."""
    import keras
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    from lstm_models.search.hypermodel import BestEpoch
    from lstm_models.search.timing import Phases

    scores = [3.0, 1.0, 2.0, 5.0]  # best at the second epoch, then worse twice

    class Score(keras.callbacks.Callback):  # the objective each epoch, put in the logs the checkpoints read
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = scores[epoch]

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            written.append((ours.exists(), theirs.exists()))
            epochs.append([v.numpy() for v in self.model.variables + self.model.optimizer.variables])

    ours, theirs, written, epochs = tmp_path / "ours.weights.h5", tmp_path / "theirs.weights.h5", [], []
    objective, phases = kt.Objective("score", "min"), Phases()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.3), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = np.random.default_rng(0).normal(size=(32, 3)), np.random.default_rng(1).normal(size=(32, 1))
    model.fit(x, y, epochs=4, batch_size=8, verbose=0,
              callbacks=[Score(), SaveBestEpoch(objective, str(theirs)), BestEpoch(objective, str(ours), phases), Watch()])

    assert written == [(False, True)] * 4  # ours is not written until the fit ends
    assert phases.seconds["checkpoint"] > 0
    with h5py.File(ours) as a, h5py.File(theirs) as b:
        def datasets(f):
            out = {}
            f.visititems(lambda name, item: out.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
            return out

        mine, keras_tuners = datasets(a), datasets(b)
    assert mine.keys() == keras_tuners.keys() and any("optimizer" in k for k in mine)
    assert all(np.array_equal(mine[k], keras_tuners[k]) for k in mine), [k for k in mine if not np.array_equal(mine[k], keras_tuners[k])]
    def same(a, b):
        return all(np.array_equal(u, v) for u, v in zip(a, b))

    now = [v.numpy() for v in model.variables + model.optimizer.variables]
    assert same(now, epochs[3]) and not same(now, epochs[1])  # the last epoch's values, not the best's


def test_tensorflow_gradient_registry_is_still_there():
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    assert isinstance(registry, dict) and "MatMul" in registry, (
        "TensorFlow changed (keras-tuner changed nothing here): lstm_models/search/tuner.py relies on "
        "tensorflow.python.framework.ops._gradient_registry._registry, a dict of op name -> gradient; "
        "without it forget_custom_gradients silently cleans nothing and the memory leak is back")
    assert tuner._gradient_registry() is registry


def test_the_distributed_oracle_members_the_workers_use_are_still_there():
    """serve_oracle and join_chief (sweeps with worker processes) reach into keras_tuner.src."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine import conditions

    assert callable(getattr(protos.get_service_grpc(), "add_OracleServicer_to_server", None)), (
        f"{CHANGED} keras_tuner.src.protos.get_service_grpc().add_OracleServicer_to_server")
    assert list(inspect.signature(OracleServicer).parameters) == ["oracle"], (
        f"{CHANGED} keras_tuner.src.distribute.oracle_chief.OracleServicer(oracle)")
    assert callable(getattr(conditions.Parent, "to_proto", None)), (
        f"{CHANGED} keras_tuner.src.engine.conditions.Parent.to_proto (its stray print is silenced)")


# --- the leak guard watches a registry that trials really fill ---

@pytest.mark.slow
def test_a_graph_mode_fit_registers_custom_gradients_and_forgetting_drops_exactly_those(seed):
    from tensorflow.python.framework import ops

    from lstm_models.search.hypermodel import SweepHyperModel
    from lstm_models.tasks import task_for

    spec = parse_sweep({"name": "g", "task": "forecasting", "dataset": {"kind": "statsmodels", "lookback": 3},
                        "search": {"cells": ["lstm"], "units": [4], "depth": 1, "batch_size": 32},
                        "tuner": {"kind": "random", "max_trials": 1, "max_epochs": 1, "seed": 3}})
    task = task_for(toy_series_splits())
    inputs = task.make_inputs(None)
    hypermodel = SweepHyperModel(spec, inputs, task.batches(inputs))
    registry = ops._gradient_registry._registry
    before, others = tuner.custom_gradients(), set(registry)

    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, epochs=1, shuffle_seed=3)  # as a trial trains: Keras' compiled train step
    new = tuner.custom_gradients() - before
    assert new, ("no CustomGradient-* entry in TensorFlow's gradient registry after an LSTM trained in graph mode: "
                 "the registry forget_custom_gradients cleans is not where TensorFlow keeps them any more, and "
                 "tests/test_sweep.py's leak check passes for nothing")
    assert all(k.startswith("CustomGradient-") for k in new) and not new & others
    kept = set(registry) - new

    tuner.forget_custom_gradients(before)
    assert tuner.custom_gradients() == before
    assert set(registry) == kept  # exactly the new entries went; MatMul's and the others stay


# --- Hyperband and Bayesian search, stopped by SIGTERM in a trial, then resumed ---

def test_a_continued_trial_takes_its_parents_model_with_the_random_states_of_a_fresh_one(seed):
    import keras

    from lstm_models.search.warm import TracedModels

    def build(dropout=True):
        return keras.Sequential([keras.Input((3,)), *([keras.layers.Dropout(0.5)] if dropout else []),
                                 keras.layers.Dense(1)])

    def states(model):
        return [np.asarray(v) for v in model.variables if v.path.endswith("seed_generator_state")]

    kept, fresh = build(), build()
    assert len(states(kept)) == 1 and not np.array_equal(states(kept)[0], states(fresh)[0])
    traced = TracedModels(keep=2)
    traced.add("01", kept)
    assert traced.take("01", fresh) is kept and np.array_equal(states(kept)[0], states(fresh)[0])
    assert len(traced) == 0 and traced.take("01", fresh) is fresh  # taken once
    traced.add("02", build(dropout=False))
    assert traced.take("02", fresh) is fresh  # not the same layers: built anew
    for trial_id in ("03", "04", "05"):
        traced.add(trial_id, build())
    assert len(traced) == 2 and traced.take("03", fresh) is fresh and traced.take("05", fresh) is not fresh


def _write(tmp_path, **tuner_settings):
    spec = tiny_series_spec(max_epochs=3, seed=11, **tuner_settings)
    # One cell (the finishing probes run per cell), units 4; the learning rate within a narrow range so that
    # a continued trial's weights stay close to its parent's; batches of 8: an epoch lasts long enough that
    # SIGTERM, sent on an epoch's line, lands in the next epoch.
    spec["search"] = {"cells": "rnn", "units": 4, "depth": 1, "batch_size": 8,
                      "learning_rate": {"min": 0.003, "max": 0.01, "sampling": "log"}}
    spec["early_stopping"] = {"patience": 0}  # every trial trains its whole budget
    return write_spec(tmp_path, spec)


def _args(tmp_path):
    return ["sweep", "spec.yaml", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow/mlflow.db",
            "--output", "exports", "--cache-dir", str(CACHE)]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def _sigterm_on(tmp_path, is_trial, epoch_prefix):
    """Run a sweep; SIGTERM it on the first line starting with ``epoch_prefix`` printed by the trial whose
    progress line ``is_trial`` accepts. Returns the exit code, stdout and stderr."""
    with open(tmp_path / "stderr-1.txt", "w+", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-m", "lstm_models", *_args(tmp_path)], cwd=tmp_path, env=_env(),
                                stdout=subprocess.PIPE, stderr=err, text=True)
        seen, trial, sent = [], None, False
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[trial "):
                trial = line
            elif trial and is_trial(trial) and line.startswith(epoch_prefix):
                os.kill(proc.pid, signal.SIGTERM)
                sent = True
                break
        rest, _ = proc.communicate(timeout=300)
        err.seek(0)
        stderr = err.read()
    assert sent, "the sweep ended before the trial to interrupt printed its epoch:\n" + "".join(seen) + stderr[-3000:]
    return proc.returncode, "".join(seen) + rest, stderr


def _resume(tmp_path, stderr):
    command = stderr.strip().splitlines()[-1].strip()
    assert command == shlex.join([sys.executable, "-m", "lstm_models", *_args(tmp_path), "--resume"]), stderr[-3000:]
    return subprocess.run(shlex.split(command), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)


def _trial_runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, sorted(trials, key=lambda r: r.info.run_name)


def _history(client, run, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]


def _checkpoint(tmp_path, trial_id):
    """A trial's best checkpoint as Keras Tuner saved it: its layers' weights and the optimizer's step count."""
    path = tmp_path / "runs" / "tiny-sunspots" / TUNER_PROJECT / f"trial_{trial_id}" / "checkpoint.weights.h5"
    weights = {}
    with h5py.File(path, "r") as f:
        f["layers"].visititems(lambda name, obj: weights.__setitem__(name, obj[()])
                               if isinstance(obj, h5py.Dataset) else None)
        steps = [int(v[()]) for v in f["optimizer/vars"].values() if v.shape == () and v.dtype.kind == "i"]
    assert weights and len(steps) == 1, f"{path}: no layer weights, or not one optimizer step count ({steps})"
    return weights, steps[0]


def _distance(a, b):
    return float(np.sqrt(sum(np.sum((a[k] - b[k]) ** 2) for k in a)))


TRIAL_LINE = re.compile(r"^\[trial (\d+)/(\d+)\] .*?(?: \(hyperband: epochs (\d+)->(\d+)\))?"
                        r"(?: \(runs (trial-\d\d) again: it was lost with its process\))?$")
LOST = "lost with its process"


def _started(stdout):
    """The trials a run started, in order: (number, of how many, Hyperband's first epoch and its end,
    the run it repeats)."""
    out = []
    for line in stdout.splitlines():
        if m := TRIAL_LINE.match(line):
            number, total, first, end, again = m.groups()
            out.append((int(number), int(total), first and int(first), end and int(end), again))
    return out


def _number(run):
    return int(run.info.run_name[6:8])  # "trial-04 rnn 1x4 ..."


def _tuner_free(params):
    return {k: v for k, v in params.items() if not k.startswith("tuner/")}


@pytest.mark.slow
def test_hyperband_stopped_in_a_continued_trial_runs_it_again_from_its_parent_on_resume(tmp_path):
    _write(tmp_path, kind="hyperband", max_trials=5, factor=3)
    # max_epochs 3, factor 3: trials 1-3 train epoch 0 only, trial 4 continues the best of them (epochs 1->3),
    # the next bracket starts with a fresh trial (0->3).
    code, out, err = _sigterm_on(tmp_path, lambda t: "(hyperband: epochs 1->3)" in t, "    epoch ")
    assert code == 143, err[-3000:]
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    done = _resume(tmp_path, err)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 trials kept (3 of 5 counted), 3 finished; 1 lost with its process, run again first" in done.stdout
    assert _started(out) == [(1, 5, 0, 1, None), (2, 5, 0, 1, None), (3, 5, 0, 1, None), (4, 5, 1, 3, None)]
    assert _started(done.stdout) == [(5, 6, 1, 3, "trial-04"), (6, 6, 0, 3, None)]  # the lost trial first, once
    assert f"6 trials (0 failed, 1 {LOST} and run again)" in done.stdout
    budgets = {number: (first, end) for number, _, first, end, _ in _started(out + done.stdout)}

    client, runs = _trial_runs(tmp_path)
    assert [_number(r) for r in runs] == [1, 2, 3, 4, 5, 6]
    assert {_number(r): r.info.status for r in runs} == {
        1: "FINISHED", 2: "FINISHED", 3: "FINISHED", 4: "KILLED", 5: "FINISHED", 6: "FINISHED"}
    assert sum(r.info.status == "FINISHED" for r in runs) == 5  # == max_trials: the lost trial does not count
    assert [r.data.tags.get("lost") for r in runs] == [None, None, None, "true", None, None]
    best_step = {}
    for run in runs:
        first, end = budgets[_number(run)]
        history = _history(client, run, "val_rmse")
        if run.info.status == "FINISHED":  # "epochs A->B": the epochs A..B-1 ran and were logged
            assert [s for s, _ in history] == list(range(first, end)), run.info.run_name
            best_step[_number(run)], best = min(history, key=lambda sv: sv[1])
            assert run.data.metrics["final_val_rmse"] == best, run.info.run_name
        else:  # stopped during its second epoch: only its first one was logged
            assert [s for s, _ in history] == [first], run.info.run_name
    recorded = {n: int(r.data.metrics["best_epoch"]) for r in runs if (n := _number(r)) in best_step}
    assert {n: e for n, e in recorded.items() if n != 5} == {n: e for n, e in best_step.items() if n != 5}

    lost, again = runs[3], runs[4]
    assert (again.data.params, again.data.tags["trial_id"]) == (lost.data.params, lost.data.tags["trial_id"])
    for key in ("loss", "val_rmse"):  # run again from the same parent with the same seeds: the same first epoch
        assert _history(client, again, key)[0] == _history(client, lost, key)[0], key

    # The continued trial started from its parent's best checkpoint, optimizer state included.
    (parent,) = [r for r in runs if r.data.tags["trial_id"] == again.data.params["tuner/trial_id"]]
    assert _number(parent) in (1, 2, 3) and _tuner_free(parent.data.params) == _tuner_free(again.data.params)
    assert parent.data.metrics["val_rmse"] == min(r.data.metrics["val_rmse"] for r in runs[:3])  # the best went on
    assert _history(client, again, "loss")[0][1] < _history(client, parent, "loss")[0][1]  # epoch 2 beats epoch 1

    parent_weights, parent_steps = _checkpoint(tmp_path, parent.data.tags["trial_id"])
    child_weights, child_steps = _checkpoint(tmp_path, again.data.tags["trial_id"])
    # the best epoch's checkpoint counts the parent's steps too: the optimizer state was restored
    assert child_steps == parent_steps * (best_step[5] + 1)
    others = [_checkpoint(tmp_path, r.data.tags["trial_id"])[0] for r in runs if _number(r) in (1, 2, 3, 6)
              and r is not parent]
    near = _distance(child_weights, parent_weights)
    assert all(near < _distance(child_weights, w) / 3 for w in others), (
        near, [_distance(child_weights, w) for w in others])  # a few epochs from its parent, far from the others

    assert recorded[5] == best_step[5]  # best_epoch counts from epoch 0, not from the trial's initial epoch


@pytest.mark.slow
def test_bayesian_stopped_in_a_trial_runs_it_again_first_on_resume(tmp_path):
    _write(tmp_path, kind="bayesian", max_trials=4)
    code, out, err = _sigterm_on(tmp_path, lambda t: t.startswith("[trial 2/4]"), "    epoch 1/3")
    assert code == 143, err[-3000:]
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    done = _resume(tmp_path, err)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 trials kept (1 of 4 counted), 1 finished; 1 lost with its process, run again first" in done.stdout
    assert [(n, total, again) for n, total, _, _, again in _started(out)] == [(1, 4, None), (2, 4, None)]
    assert [(n, total, again) for n, total, _, _, again in _started(done.stdout)] == [
        (3, 5, "trial-02"), (4, 5, None), (5, 5, None)]
    assert f"5 trials (0 failed, 1 {LOST} and run again)" in done.stdout

    client, runs = _trial_runs(tmp_path)
    assert [(_number(r), r.info.status, r.data.tags.get("lost")) for r in runs] == [
        (1, "FINISHED", None), (2, "KILLED", "true"), (3, "FINISHED", None), (4, "FINISHED", None),
        (5, "FINISHED", None)]
    ids = [r.data.tags["trial_id"] for r in runs]
    assert ids[1] == ids[2] and len(set(ids)) == 4  # Keras Tuner's trials 1..4, each finished once
    assert runs[2].data.params == runs[1].data.params
    assert [[s for s, _ in _history(client, r, "val_rmse")] for r in runs] == [[0, 1, 2], [0], [0, 1, 2], [0, 1, 2],
                                                                             [0, 1, 2]]
    for key in ("loss", "val_rmse"):  # the same configuration and seeds: the same first epoch
        assert _history(client, runs[2], key)[0] == _history(client, runs[1], key)[0], key


# --- cell balancing with a Bayesian oracle whose Gaussian process is fitted ---

@pytest.mark.slow
def test_balanced_bayesian_oracle_rotates_cells_and_keeps_unit_forget_bias_with_lstm_only(tmp_path):
    # Few searched dimensions (cell, unit_forget_bias, units): the oracle's 50 optimiser restarts stay quick.
    spec = parse_sweep({"name": "b", "task": "forecasting", "dataset": {"kind": "statsmodels", "lookback": 4},
                        "search": {"cells": ["lstm", "gru", "rnn"], "units": [4, 8], "depth": 1, "dropout": 0.0,
                                   "learning_rate": 0.01, "unit_forget_bias": [True, False], "batch_size": 32},
                        "tuner": {"kind": "bayesian", "max_trials": 8, "seed": 9}})
    lookback = spec.dataset.options.get("lookback")
    proposed = []  # the cell Keras Tuner's oracle itself chose for each trial, before the rotation

    class Proposing(kt.oracles.BayesianOptimizationOracle):
        def populate_space(self, trial_id):
            out = super().populate_space(trial_id)
            proposed.append(out["values"]["cell"])
            return out

    oracle_cls = type("X", (tuner._BalancedCells, Proposing), {})  # the mixin first, as make_tuner stacks it
    oracle = oracle_cls(objective=kt.Objective("val_rmse", "min"), max_trials=8, num_initial_points=2, seed=9)
    # A real Keras Tuner sets the oracle's project folder and declares the space by building the hypermodel.
    kt.Tuner(oracle=oracle, hypermodel=lambda hp: sample_spec(hp, spec.search, spec.task, lookback),
             directory=str(tmp_path), project_name="p")
    names = {hp.name for hp in oracle.hyperparameters.space}
    assert {"cell", "unit_forget_bias", "units", "lookback", "dropout"} <= names
    searched = [hp.name for hp in oracle.hyperparameters.space if not isinstance(hp, kt.engine.hyperparameters.Fixed)]
    assert sorted(searched) == ["cell", "unit_forget_bias", "units"]

    made_up = {"lstm": 30.0, "gru": 20.0, "rnn": 10.0}  # rnn wins: the fitted process would pick it again and again
    cells, fitted = [], []
    for _ in range(6):
        trial = oracle.create_trial("tuner0")
        assert trial.status == "RUNNING"
        values = trial.hyperparameters.values
        cells.append(values["cell"])
        assert ("unit_forget_bias" in values) == (values["cell"] == "lstm"), values
        assert trial.hyperparameters.is_active("unit_forget_bias") == (values["cell"] == "lstm")
        fitted.append(getattr(oracle.gpr, "X_train_", np.empty((0,))).shape[0])
        oracle.update_trial(trial.trial_id, {"val_rmse": made_up[values["cell"]] + values["units"] / 10}, step=0)
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)
    assert cells == ["lstm", "gru", "rnn", "lstm", "gru", "rnn"]
    assert len(proposed) == 6 and proposed[2:] != cells[2:]  # the rotation overrode the fitted process's choices
    assert fitted == [0, 0, 2, 3, 4, 5]  # trials 3..6 came from the Gaussian process fitted on the completed ones
    assert [t.status for t in oracle.trials.values()] == ["COMPLETED"] * 6
