"""Finishing a sweep: ranking in both directions, the export's self-check, the inside views, no leakage."""

import csv
import hashlib
import math
import re

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lstm_models import export as export_module
from lstm_models.export import export_model, read_meta, serve
from lstm_models.models.build import ModelSpec, SeriesInputs, build_model
from lstm_models.search.finish import SweepResult, best_per_cell
from lstm_models.search.recorder import TrialResult, better
from lstm_models.search.run import Hooks, SweepPaths, run_sweep
from lstm_models.spec.sweep import parse_sweep
from lstm_models.tasks import forecast
from lstm_models.tracking import report
from lstm_models.tracking.mlflow_store import MLflowTracker
from lstm_models.tracking.tracker import NullTracker

from conftest import toy_series_splits, toy_text_splits

NAN = math.nan


# ---- 1. ranking, without training ----

def _spec(task, **top):
    dataset = {"kind": "statsmodels", "lookback": [4]} if task == "forecasting" else {"kind": "sentiment"}
    return parse_sweep({"name": f"rank-{task}", "task": task, "dataset": dataset,
                        "search": {"units": [4]}, "tuner": {"kind": "random", "max_trials": 6}, **top})


def _trial(number, cell, status, objective, task="forecasting", test=None):
    spec = ModelSpec(task=task, cell=cell, units=(4,), lookback=4, embedding_dim=8)
    return TrialResult(trial_id=f"t{number}", number=number, spec=spec, run_id=f"run{number}", status=status,
                       objective=objective, best_epoch=0 if status == "FINISHED" else None, epochs=2,
                       seconds_per_epoch=0.5, n_params=100 + number, test_metrics=test or {})


def test_better_with_a_minimised_objective():
    assert better("min", 1.0, 2.0) and not better("min", 2.0, 1.0)
    assert not better("min", 1.0, 1.0)  # a tie keeps the first
    assert better("min", 5.0, None) and better("min", -3.0, None)
    for worse in (NAN, math.inf, -math.inf, None):  # NaN, inf and None never win, whatever they face
        assert not better("min", worse, 2.0)
        assert not better("min", worse, None)
        assert not better("min", worse, NAN)
    # The same pair the other way round for a maximised objective.
    assert better("max", 2.0, 1.0) and not better("max", 1.0, 2.0) and not better("max", NAN, 0.0)
    assert better("min", 1.0, NAN) and better("max", 1.0, NAN)  # a finite objective replaces a NaN incumbent


def test_best_per_cell_leaderboard_and_table_with_val_rmse():
    spec = _spec("forecasting")
    assert (spec.objective, spec.direction) == ("val_rmse", "min")
    trials = [
        _trial(1, "gru", "FINISHED", 0.5, test={"rmse": 0.55}),
        _trial(2, "lstm", "FINISHED", 0.3, test={"rmse": 0.35}),
        _trial(3, "rnn", "FAILED", None),
        _trial(4, "rnn", "FINISHED", 0.8, test={"rmse": 0.85}),
        _trial(5, "gru", "FINISHED", 0.4, test={"rmse": 0.45}),
        _trial(6, "lstm", "KILLED", None),
        _trial(7, "lstm", "FINISHED", 0.6),
    ]
    cells = best_per_cell(trials, "min")
    assert {c: t.number for c, t in cells.items()} == {"gru": 5, "lstm": 2, "rnn": 4}
    # A FAILED trial is ignored, even with a lower objective than every finished one.
    cheat = _trial(8, "gru", "FAILED", 0.01)
    assert {c: t.number for c, t in best_per_cell(trials + [cheat], "min").items()} == {"gru": 5, "lstm": 2, "rnn": 4}
    assert best_per_cell([cheat], "min") == {}

    result = SweepResult(spec=spec, trials=trials, best=cells["lstm"], best_per_cell=cells, test_metric="rmse",
                         wall_seconds=12.0, test_size=20)
    rows = report.leaderboard_rows(result)
    assert [(r["trial"].split()[0], r["status"], r["val_rmse"]) for r in rows] == [
        ("trial-02", "FINISHED", 0.3), ("trial-05", "FINISHED", 0.4), ("trial-01", "FINISHED", 0.5),
        ("trial-07", "FINISHED", 0.6), ("trial-04", "FINISHED", 0.8),
        ("trial-03", "FAILED", None), ("trial-06", "KILLED", None)]
    assert rows[0]["test_rmse"] == 0.35 and rows[3]["test_rmse"] is None
    assert rows[0]["hp_lookback"] == 4 and "hp_embedding_dim" not in rows[0]

    lines = report.format_leaderboard(result).splitlines()
    assert lines[0] == ("Leaderboard rank-forecasting: best trial per cell (val_rmse on val; "
                        "test rmse on 20 held-out examples)")
    body = lines[2:5]
    assert [line.split()[:3] for line in body] == [["lstm", "trial-02", "0.3000"], ["gru", "trial-05", "0.4000"],
                                                   ["rnn", "trial-04", "0.8000"]]
    assert [line.split()[3] for line in body] == ["0.3500", "0.4500", "0.8500"]
    assert body[0].endswith(" *") and not any(line.endswith("*") for line in body[1:])
    assert lines[5] == "  7 trials (1 failed, 1 interrupted) in 12s; * = exported"
    assert len(lines) == 6


def test_a_maximised_objective_ranks_the_other_way():
    spec = _spec("classification")
    assert (spec.objective, spec.direction) == ("val_accuracy", "max")
    trials = [_trial(1, "gru", "FINISHED", 0.7, "classification"), _trial(2, "lstm", "FAILED", None, "classification"),
              _trial(3, "lstm", "FINISHED", 0.9, "classification"), _trial(4, "rnn", "FINISHED", 0.6, "classification"),
              _trial(5, "gru", "FINISHED", 0.8, "classification"), _trial(6, "rnn", "FAILED", 0.99, "classification")]
    cells = best_per_cell(trials, spec.direction)
    assert {c: t.number for c, t in cells.items()} == {"gru": 5, "lstm": 3, "rnn": 4}
    result = SweepResult(spec=spec, trials=trials[:5], best=cells["lstm"], best_per_cell=cells,
                         test_metric="accuracy", test_size=40)
    rows = report.leaderboard_rows(result)
    assert [(r["trial"].split()[0], r["val_accuracy"]) for r in rows] == [
        ("trial-03", 0.9), ("trial-05", 0.8), ("trial-01", 0.7), ("trial-04", 0.6), ("trial-02", None)]
    body = report.format_leaderboard(result).splitlines()[2:5]
    assert [line.split()[:2] for line in body] == [["lstm", "trial-03"], ["gru", "trial-05"], ["rnn", "trial-04"]]
    assert [line.endswith(" *") for line in body] == [True, False, False]


# ---- 2. the export's self-check fires ----

def _tree(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_served_answer_off_by_a_tenth_stops_the_export(tmp_path, seed, monkeypatch):
    data = toy_series_splits()
    mean, var = data.train_stats()
    inputs = SeriesInputs(num_features=1, horizon=1, mean=tuple(map(float, mean)), variance=tuple(map(float, var)))
    x, y = data.windows("train", 4)
    windows = data.windows("test", 4)[0][:8]
    models = []
    for model_seed in (1, 2):
        models.append(build_model(ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=4,
                                            learning_rate=0.01), inputs, seed=model_seed))
    first, second = models
    first.fit(x, y, epochs=1, batch_size=32, verbose=0)  # the first export is a trained model
    first_out, second_out = first(windows).numpy(), second(windows).numpy()
    assert np.max(np.abs(first_out - second_out)) > 1e-3  # two different models

    target = export_model(first, tmp_path / "exp", {"version": 1}, windows)
    before = _tree(target)
    assert {"saved_model.pb", "model.keras", "meta.json"} <= set(before)

    real_serve = export_module.serve
    monkeypatch.setattr(export_module, "serve", lambda path, batch: real_serve(path, batch) + 0.1)
    with pytest.raises(RuntimeError) as caught:
        export_model(second, target, {"version": 2}, windows)
    message = str(caught.value)
    found = re.fullmatch(re.escape(str(target)) + r": the reloaded SavedModel differs "
                         r"from the Keras model \(max diff ([0-9.e-]+)\); nothing was exported", message)
    assert found, message
    assert float(found.group(1)) == pytest.approx(0.1, abs=1e-4)
    monkeypatch.undo()

    assert _tree(target) == before  # the first export, byte for byte
    assert read_meta(target) == {"version": 1}
    np.testing.assert_allclose(serve(target, windows), first_out, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no .exp.tmp-* nor .exp.old-* left


# ---- 3. the inside views of a text model, in MLflow ----

@pytest.mark.slow
def test_inside_views_of_a_text_sweep_are_logged(tmp_path, seed):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    spec = parse_sweep({"name": "t-inside", "task": "classification", "dataset": {"kind": "sentiment"},
                        "search": {"cells": ["lstm"], "units": [4], "embedding_dim": 8, "depth": 1,
                                   "bidirectional": False, "batch_size": 32},
                        "tuner": {"kind": "random", "max_trials": 1, "max_epochs": 1, "seed": 3}})
    data = toy_text_splits()
    lines = []
    result = run_sweep(spec, data, MLflowTracker(uri), SweepPaths(tmp_path / "exports", tmp_path / "work"),
                       hooks=Hooks(log=lines.append))
    assert [t.status for t in result.trials] == ["FINISHED"]

    client = MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert "inside_error" not in parent.data.tags
    assert not any(line.startswith("inside/: not written") for line in lines)
    names = {a.path for a in client.list_artifacts(result.parent_run_id, "inside")}
    assert names == {f"inside/{stem}.{ext}" for stem in ("gates_test_1", "gates_test_2", "gates_test_3", "gradients")
                     for ext in ("csv", "png")}

    got = client.download_artifacts(result.parent_run_id, "inside/gates_test_1.csv", str(tmp_path / "dl"))
    with open(got, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    words = str(data.texts["test"][0]).split()
    steps = list(dict.fromkeys((int(r["step"]), r["token"]) for r in rows))
    assert steps == [(i + 1, w) for i, w in enumerate(words)]  # one step per token of the first test text
    assert {(r["layer"], r["direction"], r["cell"]) for r in rows} == {("lstm_1", "forward", "lstm")}
    assert [r["gate"] for r in rows[:6]] == ["f", "i", "c_tilde", "c", "o", "h"]
    assert len(rows) == 6 * len(words)

    probes = client.download_artifacts(result.parent_run_id, "inside/gradients.csv", str(tmp_path / "dl"))
    with open(probes, encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["t", "steps_before_T", f"lstm ({result.best.name})"] and len(table) == 101


# ---- 4. no leakage ----

@pytest.mark.slow
def test_the_test_part_reaches_neither_training_nor_validation(tmp_path, seed):
    data = toy_series_splits()
    values = data.values.copy()
    values[data.test_start:] += 1000.0
    # season 4: the baselines then fit one ETS, not nine ARIMA orders (the test is about the model)
    shifted = type(data)(name="toy", values=values, columns=data.columns, val_start=data.val_start,
                         test_start=data.test_start, horizon=data.horizon, season=4)
    spec = parse_sweep({"name": "t-leak", "task": "forecasting", "dataset": {"kind": "statsmodels", "lookback": [4]},
                        "search": {"cells": ["gru"], "units": [4], "depth": 1, "batch_size": 16},
                        "tuner": {"kind": "random", "max_trials": 1, "max_epochs": 2, "seed": 3}})
    result = run_sweep(spec, shifted, NullTracker(), SweepPaths(tmp_path / "exports"), hooks=Hooks(log=lambda _: None))
    best = result.best
    assert best is not None and best.status == "FINISHED"
    assert best.test_metrics["rmse"] > 10 * best.objective, (best.objective, best.test_metrics)
    # The baselines see the same shifted test targets.
    assert result.baselines.scores["best"]["rmse"] == pytest.approx(best.test_metrics["rmse"], rel=1e-4)


def _series(n=60, season=4):
    rng = np.random.default_rng(11)
    t = np.arange(n, dtype="float64")
    return 20 + 0.3 * t + 3 * np.sin(2 * np.pi * t / season) + rng.normal(scale=0.5, size=n)


@pytest.mark.parametrize("method", ["arima", "ets"])
def test_statistical_forecasts_use_only_the_past(method):
    y = _series()
    train_end, t, horizon = 40, 46, 3
    starts = np.array([t, t + 2])

    def run(series):
        if method == "arima":
            return forecast.arima(series, train_end, starts, horizon)
        return forecast.ets(series, train_end, starts, horizon, 4)

    out, note = run(y)
    changed = y.copy()
    changed[t:] = changed[t:] * 5 + 100  # the targets of the window at t, and everything after
    again, note_again = run(changed)
    assert out.shape == again.shape == (2, horizon)
    np.testing.assert_array_equal(again[0], out[0])  # the window at t: identical
    assert note_again == note  # fitted on y[:train_end] only
    # The window at t + 2 starts after two changed values and follows them: the check above can fail.
    assert np.min(np.abs(again[1] - out[1])) > 10.0
