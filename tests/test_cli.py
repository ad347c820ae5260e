"""The CLI as a user runs it: a subprocess, a real store, real exports."""

import numpy as np
import tensorflow as tf
import pytest

from mlflow.tracking import MlflowClient

from lstm_models.export import read_meta

from conftest import CACHE, run_cli, tiny_sentiment_spec, tiny_series_spec, write_spec

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow


def _sweep(tmp_path, spec, *extra):
    path = write_spec(tmp_path, spec)
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    done = run_cli("sweep", str(path), "--tracking-uri", uri, "--output", str(tmp_path / "exports"),
                   "--cache-dir", str(CACHE), *extra, cwd=tmp_path)
    return done, uri


def test_sentiment_sweep_end_to_end(tmp_path):
    done, uri = _sweep(tmp_path, tiny_sentiment_spec())
    client = MlflowClient(uri)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "[trial 1/2]" in out and "[trial 2/2]" in out and "epoch 1/1" in out
    assert "Leaderboard tiny-sentiment" in out and "test_accuracy" in out
    assert f"SavedModel: {tmp_path / 'exports' / 'tiny-sentiment'}" in out
    exp = client.get_experiment_by_name("tiny-sentiment")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3 and sum("mlflow.parentRunId" in r.data.tags for r in runs) == 2
    export = tmp_path / "exports" / "tiny-sentiment"
    loaded = tf.saved_model.load(str(export))  # keep a reference while calling it
    probs = loaded.serve(tf.constant(["a wonderful, moving film", "dull and lifeless"]))
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert read_meta(export)["class_names"] == ["negative", "positive"]


def test_forecast_sweep_override_flags(tmp_path):
    done, uri = _sweep(tmp_path, tiny_series_spec(), "--max-trials", "1", "--tuner", "bayesian", "--seed", "5")
    client = MlflowClient(uri)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bayesian search" in done.stdout and "[trial 1/1]" in done.stdout
    parent = [r for r in client.search_runs([client.get_experiment_by_name("tiny-sunspots").experiment_id])
              if "mlflow.parentRunId" not in r.data.tags][0]
    assert parent.data.params["tuner.max_trials"] == "1" and parent.data.tags["seed"] == "5"
    meta = read_meta(tmp_path / "exports" / "tiny-sunspots")
    window = np.full((1, meta["lookback"], 1), 50.0, dtype="float32")
    loaded = tf.saved_model.load(str(tmp_path / "exports" / "tiny-sunspots"))
    forecast = loaded.serve(window).numpy()
    assert forecast.shape == (1, 1) and np.isfinite(forecast).all()


def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path):
    spec = tiny_series_spec()
    spec["search"]["cells"] = ["lstm", "transformer"]
    done, _ = _sweep(tmp_path, spec)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"lstm-models: error: {tmp_path / 'spec.yaml'}: search.cells[1] must be one of "
                                   "lstm, gru, rnn. Got 'transformer' instead.")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "exports").exists()
