"""run_sweep in-process: failed trials, failures in a row, the time budget, determinism."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from lstm_models.search import tuner as tuners_module
from lstm_models.spec.sweep import parse_sweep
from lstm_models.tasks.series import WindowBatches
from lstm_models.errors import SweepFailed
from lstm_models.search.run import Hooks, SweepPaths, run_sweep
from lstm_models.search.timing import SWEEP_PHASES, TRIAL_PHASES, metric
from lstm_models.tracking.mlflow_store import MLflowTracker
from lstm_models.tracking.tracker import NullTracker

from conftest import toy_series_splits

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow

ORIGINAL_FIT = tuners_module.SweepHyperModel.fit


def _spec(max_trials, **tuner):
    return parse_sweep({"name": "t", "task": "forecasting", "dataset": {"kind": "statsmodels", "lookback": [3, 5]},
                        "search": {"cells": ["gru", "rnn"], "units": [4], "depth": 1, "batch_size": 32},
                        "tuner": {"kind": "random", "max_trials": max_trials, "max_epochs": 1, "seed": 3, **tuner}})


def _fail_in(monkeypatch, failures):
    """Make the trials numbered in ``failures`` (1, 2, ... in the order they train) fail the way the mapping says."""
    calls = []

    def fit(self, hp, model, *args, **kwargs):
        calls.append(1)
        how = failures.get(len(calls))
        if how == "oom":
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4096,4096]")
        if how == "boom":
            raise RuntimeError("boom")
        if how == "nan":  # a NaN in the training windows: the loss becomes NaN at the first batch
            clean = self.batches
            values = clean.data.values.copy()
            values[10] = np.nan
            self.batches = WindowBatches(dataclasses.replace(clean.data, values=values))
            try:
                return ORIGINAL_FIT(self, hp, model, *args, **kwargs)
            finally:
                self.batches = clean
        return ORIGINAL_FIT(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(tuners_module.SweepHyperModel, "fit", fit)


def test_failed_trials_are_recorded_with_their_traceback_and_the_sweep_goes_on(tmp_path, seed, monkeypatch):
    _fail_in(monkeypatch, {2: "oom", 3: "nan"})
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    ended = []
    result = run_sweep(_spec(4), toy_series_splits(), MLflowTracker(uri),
                       SweepPaths(tmp_path / "exports", tmp_path / "runs" / "t"),
                       hooks=Hooks(log=lambda _: None, on_trial=ended.append))
    assert [t.status for t in result.trials] == ["FINISHED", "FAILED", "FAILED", "FINISHED"]
    assert ended == result.trials  # on_trial: every trial as it ends, failed ones too
    assert result.trials[1].error == ("tensorflow.python.framework.errors_impl.ResourceExhaustedError: "
                                      "OOM when allocating tensor with shape[4096,4096]")
    assert result.trials[2].error == "lstm_models.errors.TrialFailed: loss became nan at batch 0"
    assert result.best in (result.trials[0], result.trials[3]) and (tmp_path / "exports" / "t").is_dir()

    client = MlflowClient(uri)
    runs = {r.info.run_name.split()[0]: r for r in client.search_runs([client.get_experiment_by_name("t").experiment_id])}
    for name, trial in (("trial-02", result.trials[1]), ("trial-03", result.trials[2])):
        run = runs[name]
        assert run.info.status == "FAILED" and run.data.tags["error"] == trial.error
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["traceback.txt"]
        text = open(client.download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path)), encoding="utf-8").read()
        assert text.startswith("Traceback (most recent call last):") and text.rstrip().endswith(trial.error)
    assert runs["sweep"].info.status == "FINISHED"
    _assert_timed(client, runs, result)


def _assert_timed(client, runs, result):
    """Every trial run carries its phases (a failed one too), adding up to its time; the parent its own."""
    for trial in result.trials:
        run = runs[trial.name.split()[0]]
        timing = {k: v for k, v in run.data.metrics.items() if k.startswith("time/")}
        assert set(timing) == {metric(p) for p in TRIAL_PHASES} and timing == pytest.approx(trial.timing)
        assert all(v >= 0 for v in timing.values()) and timing[metric("build")] > 0
        # from before its run opened until just before it closed
        wall = (run.info.end_time - run.info.start_time) / 1000
        assert wall - 0.5 < sum(timing.values()) < wall + 5
        if trial.status == "FINISHED":  # its epochs' seconds are the trace, training and validation
            epochs = [m.value for m in client.get_metric_history(run.info.run_id, "epoch_seconds")]
            inside = timing[metric("trace")] + timing[metric("train")] + timing[metric("validate")]
            assert len(epochs) == 1 and timing[metric("trace")] > 0 and inside == pytest.approx(sum(epochs), abs=0.02)
    parent = {k: v for k, v in runs["sweep"].data.metrics.items() if k.startswith("time/")}
    assert set(parent) == {metric(p) for p in SWEEP_PHASES} and parent == pytest.approx(result.phases)
    assert parent[metric("search")] >= sum(sum(t.timing.values()) for t in result.trials) - 1.0


def test_three_failures_in_a_row_stop_the_sweep_and_keep_what_finished(tmp_path, seed, monkeypatch):
    _fail_in(monkeypatch, {2: "boom", 3: "boom", 4: "boom"})
    workdir = tmp_path / "runs" / "t"
    with pytest.raises(SweepFailed) as info:
        run_sweep(_spec(6), toy_series_splits(), NullTracker(), SweepPaths(tmp_path / "exports", workdir),
                  hooks=Hooks(log=lambda _: None))
    assert str(info.value) == ("sweep t: stopped after 3 failed trials in a row; last error: RuntimeError: boom. "
                               "The 1 finished trial(s) are kept; fix the cause and resume")

    monkeypatch.setattr(tuners_module.SweepHyperModel, "fit", ORIGINAL_FIT)  # the cause is fixed
    result = run_sweep(_spec(6), toy_series_splits(), NullTracker(), SweepPaths(tmp_path / "exports", workdir),
                       "resume", Hooks(log=lambda _: None))
    assert [t.status for t in result.trials] == ["FINISHED", "FAILED", "FAILED", "FAILED", "FINISHED", "FINISHED"]
    assert [t.number for t in result.trials] == [1, 2, 3, 4, 5, 6]


class _Clock:
    """Fake seconds: each trial that starts takes 100 of them."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def log(self, line):
        if line.startswith("[trial "):
            self.now += 100


def test_no_trial_starts_after_the_time_budget_and_the_best_so_far_is_exported(tmp_path, seed):
    clock = _Clock()
    result = run_sweep(_spec(5, time_budget="150s"), toy_series_splits(), NullTracker(),
                       SweepPaths(tmp_path / "exports"), hooks=Hooks(log=clock.log, clock=clock))
    assert len(result.trials) == 2 and all(t.status == "FINISHED" for t in result.trials)
    assert result.stop_reason == "time budget 150s spent (200s) after 2 of 5 trials"
    assert (tmp_path / "exports" / "t" / "saved_model.pb").exists()


def test_same_spec_and_seed_give_the_same_trials_and_metrics(tmp_path, seed):
    assert not tf.config.list_physical_devices("GPU")  # a CPU: seeds alone, XLA on for GRU

    def run(name):
        result = run_sweep(_spec(2), toy_series_splits(), NullTracker(), SweepPaths(tmp_path / name),
                           hooks=Hooks(log=lambda _: None))
        return [(t.spec.params(), t.objective, t.test_metrics) for t in result.trials]

    before = tuners_module.custom_gradients()
    first, second = run("a"), run("b")
    assert first == second and first[0][0] != first[1][0]
    assert tuners_module.custom_gradients() == before  # the trials' train-step graphs were let go (the leak)


# --- every cell type gets its share of the trials ---

def _balanced_spec(kind, trials, balance=True):
    return parse_sweep({
        "name": f"bal-{kind}", "task": "forecasting",
        "dataset": {"kind": "statsmodels", "lookback": 4},
        "search": {"cells": ["lstm", "gru", "rnn"], "units": [2, 4, 8], "depth": 1, "batch_size": 64},
        "tuner": {"kind": kind, "max_trials": trials, "max_epochs": 1 if kind != "hyperband" else 3,
                  "seed": 42, "balance_cells": balance},
        "early_stopping": {"patience": 0},
    })


def test_hyperband_gives_every_cell_a_turn(tmp_path, seed):
    result = run_sweep(_balanced_spec("hyperband", 4), toy_series_splits(), NullTracker(), SweepPaths(tmp_path),
                       hooks=Hooks(log=lambda _: None))
    assert len(result.trials) == 4
    assert set(result.best_per_cell) == {"lstm", "gru", "rnn"}
    for t in result.trials:  # the cell-only setting follows the cell it was given
        assert ("unit_forget_bias" in t.spec.params()) == (t.spec.cell == "lstm")


def test_rotation_is_exact_for_random_search(tmp_path, seed):
    result = run_sweep(_balanced_spec("random", 3), toy_series_splits(), NullTracker(), SweepPaths(tmp_path),
                       hooks=Hooks(log=lambda _: None))
    assert [t.spec.cell for t in result.trials] == ["lstm", "gru", "rnn"]
