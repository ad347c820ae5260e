import json

import numpy as np
import pytest
import tensorflow as tf

from lstm_models.export import export_model, read_meta, serve
from lstm_models.models import ModelSpec, SeriesInputs, TextInputs, build_model, serving_model


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
