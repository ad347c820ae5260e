import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lstm_models.export import export_model, load_keras, read_meta, serve
from lstm_models.models.build import ModelSpec, SeriesInputs, TextInputs, build_model, serving_model
from lstm_models.processes import process_identity

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow


def test_text_export_serves_strings_like_the_keras_model(tmp_path, seed):
    inputs = TextInputs(vocabulary=("good", "bad"), num_classes=2)
    model = serving_model(build_model(ModelSpec(task="classification", cell="lstm", units=(6,), embedding_dim=4),
                                      inputs), inputs)
    texts = np.array(["good good", "bad", "never seen words"], dtype=object)
    out = export_model(model, tmp_path / "exports" / "s", {"task": "classification", "class_names": ["n", "p"]}, texts)
    assert (out / "saved_model.pb").exists() and (out / "model.keras").exists()
    assert read_meta(out)["class_names"] == ["n", "p"]
    loaded = tf.saved_model.load(str(out))
    served = loaded.serve(tf.constant(["good good", "bad", "never seen words"]))
    np.testing.assert_allclose(served.numpy(), model(tf.constant(texts.astype(str))).numpy(), atol=1e-6)
    assert list(tmp_path.joinpath("exports").iterdir()) == [out]  # no staging folder left behind


def test_series_export_serves_raw_windows(tmp_path, seed):
    inputs = SeriesInputs(num_features=1, horizon=2, mean=(100.0,), variance=(25.0,))
    model = build_model(ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=3), inputs)
    windows = np.array([[[98.0], [101.0], [103.0]]], dtype="float32")
    out = export_model(model, tmp_path / "sun", {"task": "forecasting", "lookback": 3}, windows)
    np.testing.assert_allclose(serve(out, windows), model(windows).numpy(), atol=1e-5)


def test_a_failed_export_leaves_the_previous_one(tmp_path, seed):
    inputs = SeriesInputs(num_features=1, horizon=1, mean=(0.0,), variance=(1.0,))
    model = build_model(ModelSpec(task="forecasting", cell="rnn", units=(2,), lookback=3), inputs)
    windows = np.zeros((2, 3, 1), dtype="float32")
    target = export_model(model, tmp_path / "m", {"version": 1}, windows)
    with pytest.raises(Exception):
        export_model(model, target, {"version": 2}, np.zeros((2, 4, 1), dtype="float32"))  # wrong shape
    assert json.loads((target / "meta.json").read_text())["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def _series_model():
    inputs = SeriesInputs(num_features=1, horizon=1, mean=(0.0,), variance=(1.0,))
    return build_model(ModelSpec(task="forecasting", cell="rnn", units=(2,), lookback=3), inputs)


def test_a_crash_mid_write_leaves_the_previous_export(tmp_path, seed, monkeypatch):
    model = _series_model()
    windows = np.zeros((2, 3, 1), dtype="float32")
    target = export_model(model, tmp_path / "m", {"version": 1}, windows)

    def half_written(path, *args, **kwargs):
        open(path, "wb").write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", half_written)
    with pytest.raises(OSError, match="No space left"):
        export_model(model, target, {"version": 2}, windows)
    assert json.loads((target / "meta.json").read_text())["version"] == 1
    np.testing.assert_allclose(serve(target, windows), model(windows).numpy(), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_crash_during_the_swap_puts_the_previous_export_back(tmp_path, seed, monkeypatch):
    import pathlib

    model = _series_model()
    windows = np.zeros((2, 3, 1), dtype="float32")
    target = export_model(model, tmp_path / "m", {"version": 1}, windows)
    rename = pathlib.Path.rename

    def failing_swap(self, dest):
        if self.parent.name.startswith(".m.tmp-"):
            raise OSError("the disk went away")
        return rename(self, dest)

    monkeypatch.setattr(pathlib.Path, "rename", failing_swap)
    with pytest.raises(OSError, match="the disk went away"):
        export_model(model, target, {"version": 2}, windows)
    assert json.loads((target / "meta.json").read_text())["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]

    # A process killed between the two renames leaves the old export aside: the next export restores it.
    monkeypatch.setattr(pathlib.Path, "rename", rename)
    target.rename(tmp_path / ".m.old-deadbeef")
    with pytest.raises(Exception):
        export_model(model, target, {"version": 3}, np.zeros((2, 4, 1), dtype="float32"))  # fails its check
    assert json.loads((target / "meta.json").read_text())["version"] == 1


def test_the_staged_export_of_a_killed_process_is_removed_by_the_next_export(tmp_path, seed):
    """kill -9 between staging and publishing leaves a hidden folder: the next export of that name
    removes it, and leaves those of a live process and of another machine (which may be alive)."""
    killed = subprocess.run([sys.executable, "-c", f"""
import os, numpy as np
from lstm_models.export import stage_export
from lstm_models.models.build import ModelSpec, SeriesInputs, build_model
model = build_model(ModelSpec(task="forecasting", cell="rnn", units=(2,), lookback=3),
                    SeriesInputs(num_features=1, horizon=1, mean=(0.0,), variance=(1.0,)))
stage_export(model, {str(tmp_path / "m")!r}, {{}}, np.zeros((2, 3, 1), dtype="float32"))
os.kill(os.getpid(), 9)
"""], env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, capture_output=True)
    assert killed.returncode == -9
    (orphan,) = tmp_path.glob(".m.tmp-*")
    assert (orphan / "m" / "saved_model.pb").exists()
    namespace = process_identity(os.getpid()).split("/")[1]
    for name, owner in (("live", process_identity(os.getpid())), ("elsewhere", f"another-boot/{namespace}/1/1")):
        (tmp_path / f".m.tmp-{name}").mkdir()
        (tmp_path / f".m.tmp-{name}" / "owner").write_text(owner)
    export_model(_series_model(), tmp_path / "m", {}, np.zeros((2, 3, 1), dtype="float32"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.tmp-elsewhere", ".m.tmp-live", "m"]


def test_model_keras_is_loaded_in_safe_mode(tmp_path, seed, monkeypatch):
    import keras

    model = _series_model()
    windows = np.zeros((2, 3, 1), dtype="float32")
    target = export_model(model, tmp_path / "m", {}, windows)
    calls = []
    real = keras.saving.load_model
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append(k) or real(*a, **k))
    again = load_keras(target)
    assert calls == [{"safe_mode": True}]
    np.testing.assert_allclose(again(windows).numpy(), model(windows).numpy(), atol=1e-6)


def test_residual_head_forecasts_the_change_and_survives_export_and_safe_mode(tmp_path, seed):
    inputs = SeriesInputs(num_features=2, horizon=2, mean=(100.0, 0.0), variance=(25.0, 1.0), step_std=(0.5, 1.0))
    model = build_model(ModelSpec(task="forecasting", cell="lstm", units=(4,), lookback=3, residual=True), inputs)
    windows = np.array([[[98.0, 1.0], [101.0, 0.0], [1003.0, 2.0]], [[5.0, 0.0], [6.0, 0.0], [7.0, 1.0]]],
                       dtype="float32")
    dense = model.get_layer("forecast_scaled")
    kernel, bias = dense.get_weights()
    dense.set_weights([np.zeros_like(kernel), np.array([2.0, -4.0], dtype="float32")])
    # A zero change network forecasts the last value; its bias moves it in units of step_std.
    np.testing.assert_allclose(model(windows).numpy(), [[1004.0, 1001.0], [8.0, 5.0]], atol=1e-4)
    out = export_model(model, tmp_path / "co2", {"task": "forecasting", "lookback": 3}, windows)
    np.testing.assert_allclose(serve(out, windows), [[1004.0, 1001.0], [8.0, 5.0]], atol=1e-4)
    again = load_keras(out)  # safe_mode: the registered LastValue layer, no code from the file
    np.testing.assert_allclose(again(windows).numpy(), model(windows).numpy(), atol=1e-5)
    assert type(again.get_layer("last_value")).__name__ == "LastValue"


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_a_request_of_empty_texts_gets_what_an_empty_text_gets_beside_others(tmp_path, seed, pooling):
    """All-empty texts vectorise to no step at all, which no recurrent loop accepts: the serving
    model keeps one masked padding step, so each gets the initial state's answer, in the export too."""
    inputs = TextInputs(vocabulary=("good", "bad"), num_classes=2)
    trained = build_model(ModelSpec(task="classification", cell="gru", units=(4,), embedding_dim=3,
                                    bidirectional=True, pooling=pooling), inputs, seed=4)
    with pytest.raises(tf.errors.InvalidArgumentError):  # what the token model does with no step
        trained(tf.zeros([2, 0], tf.int64))
    model = serving_model(trained, inputs)
    beside = model(tf.constant(["", "good bad"])).numpy()
    alone = model(tf.constant(["", "!?"])).numpy()  # punctuation only is no token either
    assert np.isfinite(beside).all()
    np.testing.assert_allclose(alone, np.repeat(beside[:1], 2, axis=0), atol=1e-6)
    assert np.abs(beside[0] - beside[1]).max() > 1e-4  # the empty text's answer is its own
    np.testing.assert_allclose(model(tf.constant(["good bad"])).numpy(), beside[1:], atol=1e-6)  # nothing else moves
    out = export_model(model, tmp_path / "e", {"task": "classification", "class_names": ["n", "p"]},
                       np.array(["", "good"], dtype=object))
    loaded = tf.saved_model.load(str(out))  # held: its variables live as long as it does
    np.testing.assert_allclose(loaded.serve(tf.constant([""])).numpy(), beside[:1], atol=1e-6)
    np.testing.assert_allclose(load_keras(out)(tf.constant([""])).numpy(), beside[:1], atol=1e-6)  # safe_mode
