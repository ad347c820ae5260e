"""The adding problem: data, spec, and a tracked sweep that logs the inside/ views."""

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lstm_models.spec.sweep import load_sweep, parse_sweep
from lstm_models.data import load_dataset
from lstm_models.data.adding import adding_problem
from lstm_models.errors import ConfigError, DataError

from conftest import ROOT, run_cli, write_spec

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow


def _spec(**dataset):
    return {"name": "tiny-adding", "task": "forecasting",
            "dataset": {"kind": "adding", "length": 12, "train_size": 300, "val_size": 40, "test_size": 40,
                        **dataset},
            "search": {"cells": ["lstm", "gru"], "units": 4, "depth": 1, "dropout": 0.0, "batch_size": 50},
            "tuner": {"kind": "random", "max_trials": 2, "max_epochs": 1, "seed": 3},
            "objective": "val_loss"}


def test_adding_sequences_have_one_marker_per_half_and_sum_them():
    x, y = adding_problem(500, 10, np.random.default_rng(0))
    assert x.shape == (500, 10, 2) and y.shape == (500, 1) and x.dtype == y.dtype == np.float32
    markers = x[..., 1]
    assert (markers[:, :5].sum(axis=1) == 1).all() and (markers[:, 5:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    assert 0.0 <= x[..., 0].min() and x[..., 0].max() < 1.0
    big = adding_problem(200_000, 4, np.random.default_rng(1))[1]
    assert np.mean((big - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.003)  # the always-1 baseline


def test_adding_spec_reads_whole_sequences(tmp_path):
    spec = parse_sweep(_spec(), source="a.yaml")
    assert spec.dataset.get("lookback").values == (12,)  # the window is the sequence
    assert spec.to_dict()["dataset"] == {"kind": "adding", "length": 12, "train_size": 300, "val_size": 40,
                                         "test_size": 40, "seed": 1234}
    assert parse_sweep(spec.to_dict()).dataset == spec.dataset  # the logged spec loads again
    data = load_dataset(spec.dataset, tmp_path)
    assert data.sizes() == {"train": 300, "val": 40, "test": 40} and data.values.shape == (3600, 2)
    assert data.windows("test", 12)[0].shape == (40, 12, 2) and data.horizon == 1
    again = load_dataset(parse_sweep(_spec(train_size=10)).dataset, tmp_path)
    np.testing.assert_array_equal(again.windows("test", 12)[0], data.windows("test", 12)[0])
    with pytest.raises(DataError, match="adding-12: sequences are 12 steps long; lookback 8 cannot cut them"):
        data.windows("train", 8)
    with pytest.raises(ConfigError, match="unknown key dataset.lookback. Allowed: length, train_size"):
        parse_sweep(_spec(lookback=5), source="a.yaml")
    assert load_sweep(ROOT / "sweeps" / "adding.yaml").dataset.get("length") == 100


def test_tracked_sweep_logs_gates_and_gradients_to_the_parent(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    spec = _spec()
    spec["search"]["cells"], spec["tuner"]["max_trials"] = ["gru"], 1
    done = run_cli("sweep", str(write_spec(tmp_path, spec)), "--tracking-uri", uri,
                   "--output", str(tmp_path / "exports"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "inside/: gates of trial-0" in done.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny-adding")
    parent = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags][0]
    logged = sorted(f.path for f in client.list_artifacts(parent.info.run_id, "inside"))
    assert logged == [f"inside/{n}" for n in (
        "gates_test_1.csv", "gates_test_1.png", "gates_test_2.csv", "gates_test_2.png",
        "gates_test_3.csv", "gates_test_3.png", "gradients.csv", "gradients.png")]
    header = open(client.download_artifacts(parent.info.run_id, "inside/gradients.csv",
                                            str(tmp_path))).readline().strip().split(",")
    assert header == ["t", "steps_before_T", "gru (trial-01 gru 1x4 lb12 do0)"]
    gates = open(client.download_artifacts(parent.info.run_id, "inside/gates_test_1.csv", str(tmp_path))).read()
    assert gates.count("\n") == 1 + 12 * 4  # header + steps x (z, r, h_tilde, h)


def test_a_failed_view_is_reported_not_fatal(tmp_path):
    from types import SimpleNamespace

    from lstm_models.inspect.views import log_inside_views
    from lstm_models.interrupt import Deferral

    class Tracker:
        enabled, tags = True, []

        def set_tags(self, run_id, tags):
            self.tags.append((run_id, tags))

    lines, tracker = [], Tracker()
    result = SimpleNamespace(export_dir=tmp_path / "gone", parent_run_id="p1")
    assert log_inside_views(result, None, tracker, models={}, log=lines.append, guard=Deferral()) == []
    message = f"ConfigError: {tmp_path / 'gone'}: no such export folder (a sweep writes one to exports/<sweep name>)"
    assert tracker.tags == [("p1", {"inside_error": message})] and lines == [f"inside/: not written ({message})"]
