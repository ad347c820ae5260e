"""FusedAdam: Adam's update in one op per dense variable, checked against Keras's Adam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstm_models.models.build import ModelSpec, TextInputs, build_model
from lstm_models.models.optimizer import FusedAdam

pytestmark = pytest.mark.slow  # trains with TensorFlow


def _series_model(optimizer):
    keras.utils.set_random_seed(3)
    window = keras.Input(shape=(6, 2))
    x = keras.layers.LSTM(5, name="lstm")(window)
    model = keras.Model(window, keras.layers.Dense(1, name="head")(x))
    model.compile(optimizer=optimizer, loss="mse")
    return model


def test_on_dense_gradients_it_takes_the_steps_keras_adam_takes(seed):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6, 2)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    keras_adam = _series_model(keras.optimizers.Adam(0.01, clipnorm=1.0))
    fused = _series_model(FusedAdam(0.01, clipnorm=1.0))
    start = fused.get_weights()
    for model in (keras_adam, fused):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 4 steps
    assert max(np.abs(w1 - w0).max() for w1, w0 in zip(fused.get_weights(), start)) > 0.02  # it trained
    for w1, w2 in zip(keras_adam.get_weights(), fused.get_weights()):
        np.testing.assert_allclose(w1, w2, atol=2e-6)  # float32 sums in another order, nothing more
    for s1, s2 in zip(keras_adam.optimizer.variables, fused.optimizer.variables):
        assert s1.name == s2.name  # the same slots, in the same order
        np.testing.assert_allclose(np.asarray(s1), np.asarray(s2), rtol=1e-4, atol=1e-8)


def test_on_an_embedding_s_sparse_gradient_it_takes_keras_adam_s_steps_repeated_rows_squared_one_by_one():
    tables = [keras.Variable(np.ones((5, 2), dtype="float32")) for _ in range(2)]
    optimizers = [keras.optimizers.Adam(0.1), FusedAdam(0.1)]
    # Token 1 appears twice in the first batch, token 3 once; the second batch has token 1 only.
    batches = [tf.IndexedSlices(tf.constant([[0.5, -1.0], [0.25, 2.0], [1.0, 1.0]]), tf.constant([1, 1, 3]),
                                tf.constant([5, 2])),
               tf.IndexedSlices(tf.constant([[-2.0, 0.5]]), tf.constant([1]), tf.constant([5, 2]))]
    for table, optimizer in zip(tables, optimizers):
        optimizer.build([table])
        for grad in batches:
            optimizer.apply_gradients([(grad, table)])
    np.testing.assert_allclose(np.asarray(tables[1]), np.asarray(tables[0]), rtol=1e-6)
    assert np.asarray(tables[1])[[0, 2, 4]].tolist() == [[1.0, 1.0]] * 3  # rows no batch touched never move
    # Row 1, column 1 by hand: rows -1 and 2, then 0.5. Step 1: m = 0.1, v = 0.001 (1 + 4), so it moves
    # 0.1 sqrt(0.001) / 0.1 * 0.1 / sqrt(0.005) = 0.0447; step 2: m = 0.14, v = 0.005245, it moves
    # 0.1 sqrt(1 - 0.999^2) / (1 - 0.9^2) * 0.14 / sqrt(0.005245) = 0.0455. Squaring the sum (1) instead
    # would move it 0.1 in step 1.
    assert np.asarray(tables[1])[1, 1] == pytest.approx(1 - 0.0447214 - 0.0454888, abs=1e-5)


def test_weights_saved_with_keras_adam_load_into_a_built_model_with_their_optimizer_state(tmp_path, seed):
    spec = ModelSpec(task="classification", cell="gru", units=(4,), embedding_dim=3)
    inputs = TextInputs(vocabulary=("good", "bad", "film"), num_classes=2)
    ids, labels = np.array([[2, 4, 0], [3, 3, 4], [4, 2, 2]]), np.array([1, 0, 1])
    old = build_model(spec, inputs, seed=1)
    old.compile(optimizer=keras.optimizers.Adam(0.01, clipnorm=1.0), loss="sparse_categorical_crossentropy")
    old.optimizer.build(old.trainable_variables)
    old.fit(ids, labels, epochs=2, verbose=0)
    old.save_weights(tmp_path / "old.weights.h5")

    new = build_model(spec, inputs, seed=2)
    assert isinstance(new.optimizer, FusedAdam)
    new.load_weights(tmp_path / "old.weights.h5")
    assert [np.asarray(v).tolist() for v in new.optimizer.variables] == \
           [np.asarray(v).tolist() for v in old.optimizer.variables]
    assert int(new.optimizer.iterations) == 2
    restored = FusedAdam.from_config(new.optimizer.get_config())
    assert (restored.beta_1, restored.beta_2, restored.epsilon, restored.clipnorm) == (0.9, 0.999, 1e-7, 1.0)
