"""FusedAdam: Adam's update in one op per variable, checked against Keras's Adam and the paper's."""

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


def test_on_an_embedding_s_sparse_gradient_it_is_the_paper_s_adam_with_repeated_rows_summed_first():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    table = keras.Variable(np.ones((5, 2), dtype="float32"))
    optimizer = FusedAdam(lr)
    optimizer.build([table])
    # Token 1 appears twice in the batch: its gradient is the sum of both rows, as for a dense gradient.
    batches = [tf.IndexedSlices(tf.constant([[0.5, -1.0], [0.25, 2.0], [1.0, 1.0]]), tf.constant([1, 1, 3]),
                                tf.constant([5, 2])),
               tf.IndexedSlices(tf.constant([[-2.0, 0.5]]), tf.constant([1]), tf.constant([5, 2]))]
    w, m, v = np.ones((5, 2)), np.zeros((5, 2)), np.zeros((5, 2))
    for t, grad in enumerate(batches, start=1):
        optimizer.apply_gradients([(grad, table)])
        g = np.asarray(tf.convert_to_tensor(grad), dtype="float64")
        m, v = m + (g - m) * (1 - b1), v + (g * g - v) * (1 - b2)
        w -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(np.asarray(table), w, rtol=1e-6)
    assert np.asarray(table)[[0, 2, 4]].tolist() == [[1.0, 1.0]] * 3  # rows no batch touched never move
    # Row 1, column 1 by hand: gradients -1 + 2 = 1, then 0.5. Step 1 moves it by lr (1 -> 0.9); step 2
    # by 0.1 sqrt(1 - 0.999^2) / (1 - 0.9^2) * 0.14 / sqrt(0.001249) = 0.0932. Squaring each of the
    # repeated rows before summing them (1 + 4 instead of 1) would move it 0.045 in step 1.
    assert np.asarray(table)[1, 1] == pytest.approx(0.8068, abs=1e-4)


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
