"""The fused Adam step computes Keras's Adam, and the optimizer stays Keras's own."""

import numpy as np
import pytest
from conftest import assert_train_alike

from lstm_models.models.adam import _fused_update_step, fuse_adam
from lstm_models.models.build import ModelSpec, SeriesInputs, TextInputs, build_model
from lstm_models.models.loops import share_loops

pytestmark = pytest.mark.slow  # every test here runs TensorFlow


def _fused(optimizer) -> bool:
    return getattr(optimizer.update_step, "func", None) is _fused_update_step


def _keras_twin(model):
    """The same network with the same weights and loops, compiled with Keras's own Adam step."""
    import keras

    twin = share_loops(keras.models.clone_model(model))
    twin.set_weights(model.get_weights())
    twin.compile(optimizer=keras.optimizers.Adam(float(model.optimizer.learning_rate.numpy()), clipnorm=model.optimizer.clipnorm),
                 loss=model.loss)
    assert not _fused(twin.optimizer)
    return twin


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_text_training_matches_keras_adam(cell, seed):
    """An embedding's sparse gradient, clipping, two layers: the same losses and weights."""
    inputs = TextInputs(vocabulary=tuple(f"w{i}" for i in range(30)), num_classes=2)
    spec = ModelSpec(task="classification", cell=cell, units=(8, 4), embedding_dim=6, learning_rate=0.01)
    model = build_model(spec, inputs, seed=3)
    assert _fused(model.optimizer)
    rng = np.random.default_rng(2)
    ids = rng.integers(1, 32, size=(48, 10))
    ids[:, 6:] = 0
    assert_train_alike(model, _keras_twin(model), ids, rng.integers(0, 2, size=48))


def test_forecast_training_matches_keras_adam_and_its_state(seed):
    """Moments and step count too: the optimizer's variables after training are Keras's."""
    inputs = SeriesInputs(num_features=1, horizon=1, mean=(0.0,), variance=(1.0,))
    model = build_model(ModelSpec(task="forecasting", cell="rnn", units=(6,), lookback=5, learning_rate=0.01,
                                  clipnorm=0.0), inputs, seed=4)
    twin = _keras_twin(model)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(64, 5, 1)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    assert_train_alike(model, twin, x, y)
    assert int(model.optimizer.iterations.numpy()) == int(twin.optimizer.iterations.numpy()) == 8
    mine = {v.path: v.numpy() for v in model.optimizer.variables}
    keras_own = {v.path: v.numpy() for v in twin.optimizer.variables}
    assert len(mine) == len(keras_own) > 2
    for (path, value), other in zip(mine.items(), keras_own.values()):
        np.testing.assert_allclose(value, other, rtol=1e-3, atol=1e-6, err_msg=path)
    assert any(np.abs(value).max() > 0 for path, value in mine.items() if "momentum" in path)  # the moments moved


def test_a_saved_model_keeps_keras_adam_and_trains_on(tmp_path, seed):
    import keras

    inputs = SeriesInputs(num_features=1, horizon=1, mean=(0.0,), variance=(1.0,))
    model = build_model(ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=3), inputs, seed=5)
    x, y = np.ones((8, 3, 1), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(loaded.optimizer) is keras.optimizers.Adam and not _fused(loaded.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 1
    loaded.fit(x, y, epochs=1, verbose=0)  # Keras's own step, from the saved moments
    assert int(loaded.optimizer.iterations.numpy()) == 2


def test_keras_step_kept_where_the_fused_op_does_not_apply(seed):
    import keras

    assert not _fused(fuse_adam(keras.optimizers.Adam(amsgrad=True)))
    assert not _fused(fuse_adam(keras.optimizers.SGD()))
    assert _fused(fuse_adam(keras.optimizers.Adam()))
