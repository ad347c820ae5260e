"""The shared recurrent loops compute Keras's loop, outputs and gradients, and are traced once."""

import numpy as np
import pytest
from conftest import assert_train_alike

from lstm_models.models.build import CELLS, ModelSpec, SeriesInputs, TextInputs, build_model
from lstm_models.models.loops import (_loop, _loop_gradient, _shared_inner_loop, layers_per_direction, share_loops,
                                      shares)

pytestmark = pytest.mark.slow  # every test here runs TensorFlow


def _pair(cell: str, bidirectional: bool, sequences: bool):
    """The same small network twice, with the same weights: Keras's loop, and the shared one."""
    import keras

    def make():
        keras.utils.set_random_seed(1)
        x, mask = keras.Input((None, 3)), keras.Input((None,), dtype="bool")
        layer = CELLS[cell](4, return_sequences=sequences, bias_initializer="random_normal")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer)
        return keras.Model([x, mask], layer(x, mask=mask))

    keras_loop, shared = make(), share_loops(make())
    shared.set_weights(keras_loop.get_weights())
    return keras_loop, shared


def _shared(layer) -> bool:
    return getattr(layer.inner_loop, "func", None) is _shared_inner_loop


def _outputs_and_gradients(model, x, mask):
    import tensorflow as tf

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            y = model([x, mask])
            loss = tf.reduce_sum(y * y)
        return y, tape.gradient(loss, model.trainable_variables)

    y, grads = run()
    return [np.asarray(y)] + [np.asarray(g) for g in grads]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("sequences", [False, True])
def test_the_shared_loop_computes_what_keras_computes(cell, sequences, seed):
    """A Bidirectional wrapper holds both directions: a layer reading forward and one reading
    backwards (``go_backwards``, whose sequence comes out last step first)."""
    keras_loop, shared = _pair(cell, True, sequences)
    x = np.random.default_rng(0).normal(size=(5, 7, 3)).astype("float32")
    mask = np.ones((5, 7), bool)
    mask[0, 4:] = False  # padded at the end
    mask[2, 1:] = False  # one real step
    mask[3, :2] = False  # padded at the start
    mask[4, :] = False  # nothing real: Keras gives zeros
    expected, got = _outputs_and_gradients(keras_loop, x, mask), _outputs_and_gradients(shared, x, mask)
    assert len(expected) == len(got) == 1 + len(keras_loop.trainable_variables)
    assert np.abs(expected[0]).max() > 0.1  # the layer computed something
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    recurrent = layers_per_direction(shared)
    assert [type(l) for l in recurrent] == [CELLS[cell]] * 2
    assert [l.go_backwards for l in recurrent] == [False, True]
    assert all(_shared(l) for l in recurrent)  # it did run the shared loop


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_traced_layer_keeps_keras_static_shapes(cell, seed):
    """Code that traces a layer reads its output's static shape (the gradient probe, which sizes its
    Jacobians by it), so the shared loop gives the shapes Keras's loop gives."""
    import tensorflow as tf

    from lstm_models.inspect.gradients import probe_trained

    for sequences in (False, True):
        keras_loop, shared = _pair(cell, False, sequences)
        layers = [layers_per_direction(m)[0] for m in (keras_loop, shared)]
        shapes = [tf.function(lambda t, layer=layer: layer(t)).get_concrete_function(
            tf.TensorSpec([2, None, 3], tf.float32)).output_shapes for layer in layers]
        assert shapes[1] == shapes[0] == ([2, None, 4] if sequences else [2, 4])
    inputs = TextInputs(vocabulary=tuple(f"w{i}" for i in range(20)), num_classes=2)
    model = build_model(ModelSpec(task="classification", cell=cell, units=(4,), embedding_dim=8), inputs, seed=1)
    probe = probe_trained(model, length=12, batch=4)
    assert probe.norms.shape == (12,) and np.all(np.isfinite(probe.norms)) and probe.norms[-1] > 0


def test_the_gradient_probe_of_a_bidirectional_model_follows_its_forward_half(seed):
    """The backward half's last output has just read x_1: probed whole, the curve rose again at
    the first steps (a U) and hid the vanishing the probe is there to show."""
    from lstm_models.inspect.gradients import jacobian_norms, probe_trained

    inputs = TextInputs(vocabulary=tuple(f"w{i}" for i in range(20)), num_classes=2)
    model = build_model(ModelSpec(task="classification", cell="rnn", units=(4,), embedding_dim=8,
                                  bidirectional=True), inputs, seed=1)
    probe = probe_trained(model, length=40, batch=4)
    (layer,) = [l for l in model.layers if type(l).__name__ == "Bidirectional"]
    x = np.asarray(model.get_layer(index=1)(np.random.default_rng(0).integers(2, 22, size=(4, 40))))
    whole = jacobian_norms(lambda t: layer(t, training=False), x)
    assert whole[0] > whole[len(whole) // 2]  # the U the whole output draws
    assert probe.norms[0] < probe.norms[len(probe.norms) // 2] < probe.norms[-1]  # the forward half fades


def test_models_of_other_sizes_reuse_the_loop_traced_once(seed):
    """The point of sharing: a second trial's model, another size, traces no loop of its own."""
    import keras

    inputs = TextInputs(vocabulary=tuple(f"w{i}" for i in range(20)), num_classes=2)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 22, size=(32, 9))
    ids[::2, 6:] = 0
    labels = rng.integers(0, 2, size=32)

    def traces():  # each loop's and each gradient's, without and with sequences
        return tuple(f("gru", s).experimental_get_tracing_count() for f in (_loop, _loop_gradient) for s in (False, True))

    before = traces()  # an earlier test of this process may have traced them (an export traces them once more)
    counts = []
    for units, embedding in [((8,), 4), ((16, 6), 8), ((5,), 3)]:
        keras.backend.clear_session()
        model = build_model(ModelSpec(task="classification", cell="gru", units=units, embedding_dim=embedding),
                            inputs, seed=3)
        history = model.fit(ids, labels, batch_size=8, epochs=1, validation_data=(ids, labels), verbose=0)
        assert np.isfinite(history.history["loss"][0])
        counts.append(traces())
    added = [tuple(c - b for c, b in zip(count, before)) for count in counts]
    assert added[0][0] <= 1 and added[0][2] <= 1 and min(counts[0][0], counts[0][2]) >= 1  # the last layer's loop
    # and its gradient, traced by the first model unless an earlier test had
    assert (counts[1][0], counts[1][2]) == (counts[0][0], counts[0][2])  # not again by the second model, which
    assert added[1][1] <= 1 and added[1][3] <= 1 and min(counts[1]) >= 1  # adds the loop that returns sequences
    assert counts[2] == counts[1]  # and the third model traces none again


def test_training_matches_keras_loop_from_the_same_start(seed):
    import keras

    inputs = TextInputs(vocabulary=tuple(f"w{i}" for i in range(30)), num_classes=2)
    spec = ModelSpec(task="classification", cell="lstm", units=(8, 4), bidirectional=True, embedding_dim=6,
                     learning_rate=0.01)
    shared = build_model(spec, inputs, seed=5)
    keras_loop = keras.models.clone_model(shared)  # Keras's own layers, nothing shared
    assert len(layers_per_direction(keras_loop)) == 4 and not any(_shared(l) for l in layers_per_direction(keras_loop))
    keras_loop.set_weights(shared.get_weights())
    keras_loop.compile(optimizer=keras.optimizers.Adam(0.01, clipnorm=1.0), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 32, size=(48, 10))
    ids[:, 7:] = 0
    labels = rng.integers(0, 2, size=48)
    assert_train_alike(shared, keras_loop, ids, labels)


def test_a_saved_model_keras_file_is_plain_keras(tmp_path, seed):
    import keras

    inputs = TextInputs(vocabulary=("good", "bad", "film"), num_classes=2)
    model = build_model(ModelSpec(task="classification", cell="rnn", units=(4,), embedding_dim=3), inputs, seed=2)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)  # no custom objects: Keras's own classes
    assert type(loaded.get_layer("rnn_1")).__name__ == "SimpleRNN"
    assert _shared(model.get_layer("rnn_1")) and not _shared(loaded.get_layer("rnn_1"))  # Keras's own loop
    ids = np.array([[2, 4, 0], [3, 3, 4]])
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)), atol=1e-6)


def test_layers_it_would_not_compute_exactly_keep_keras_loop(seed):
    import keras

    assert shares(keras.layers.LSTM(4))
    assert not shares(keras.layers.LSTM(4, recurrent_dropout=0.1))
    assert not shares(keras.layers.LSTM(4, dropout=0.1))  # the cell's own input dropout
    assert not shares(keras.layers.GRU(4, reset_after=False))
    assert not shares(keras.layers.SimpleRNN(4, activation="relu"))
    assert not shares(keras.layers.LSTM(4, recurrent_activation="hard_sigmoid"))
    assert not shares(keras.layers.LSTM(4, unroll=True))
    inputs = TextInputs(vocabulary=("good", "bad"), num_classes=2)
    dropped = build_model(ModelSpec(task="classification", cell="lstm", units=(4,), recurrent_dropout=0.2), inputs)
    assert not _shared(dropped.get_layer("lstm_1"))
    compiled = build_model(ModelSpec(task="classification", cell="lstm", units=(4,)), inputs, jit_compile=True)
    assert not _shared(compiled.get_layer("lstm_1"))  # XLA compiles Keras's loop
    plain = build_model(ModelSpec(task="classification", cell="lstm", units=(4,)), inputs)
    assert _shared(plain.get_layer("lstm_1"))
    series = SeriesInputs(num_features=1, horizon=1, mean=(0.0,), variance=(1.0,))
    forecaster = build_model(ModelSpec(task="forecasting", cell="lstm", units=(4,), lookback=40), series)
    assert not forecaster.get_layer("lstm_1").unroll and not _shared(forecaster.get_layer("lstm_1"))  # batch 64
    small = build_model(ModelSpec(task="forecasting", cell="lstm", units=(4,), lookback=40, batch_size=16), series)
    assert _shared(small.get_layer("lstm_1"))  # batches of 16 windows train faster on the shared loop
    unrolled = build_model(ModelSpec(task="forecasting", cell="lstm", units=(4,), lookback=8, batch_size=16), series)
    assert unrolled.get_layer("lstm_1").unroll and not _shared(unrolled.get_layer("lstm_1"))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_forecaster_in_small_batches_trains_as_on_keras_loop(cell, seed):
    """No mask, two features, the residual head: from the same start, the same losses and weights."""
    import keras

    series = SeriesInputs(num_features=2, horizon=2, mean=(1.0, 0.0), variance=(4.0, 1.0), step_std=(0.5, 1.0))
    spec = ModelSpec(task="forecasting", cell=cell, units=(6, 4), lookback=40, batch_size=16, residual=True,
                     learning_rate=0.01)
    shared = build_model(spec, series, seed=5)
    keras_loop = keras.models.clone_model(shared)
    assert all(_shared(l) for l in layers_per_direction(shared)) and len(layers_per_direction(shared)) == 2
    assert not any(_shared(l) for l in layers_per_direction(keras_loop))
    keras_loop.set_weights(shared.get_weights())
    keras_loop.compile(optimizer=keras.optimizers.Adam(0.01, clipnorm=1.0), loss="mse")
    rng = np.random.default_rng(2)
    windows = rng.normal(size=(48, 40, 2)).astype("float32")
    assert_train_alike(shared, keras_loop, windows, rng.normal(size=(48, 2)).astype("float32"))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("sequences", [False, True])
def test_the_written_out_gradient_reaches_the_inputs_and_the_initial_states(cell, sequences, seed):
    """The loop's gradient is written out (`_loop_gradient`): besides the weights', it gives the
    inputs' and the initial states' gradients, and takes the final states' (``return_state``)."""
    import keras
    import tensorflow as tf

    count = 2 if cell == "lstm" else 1

    def make():
        keras.utils.set_random_seed(2)
        x, mask = keras.Input((None, 3)), keras.Input((None,), dtype="bool")
        states = [keras.Input((4,)) for _ in range(count)]
        layer = CELLS[cell](4, return_sequences=sequences, return_state=True, bias_initializer="random_normal")
        return keras.Model([x, mask, *states], layer(x, mask=mask, initial_state=states))

    keras_loop, shared = make(), share_loops(make())
    shared.set_weights(keras_loop.get_weights())
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(4, 6, 3)).astype("float32"))
    mask = np.ones((4, 6), bool)
    mask[1, 3:] = False
    mask[2, :2] = False
    mask = tf.constant(mask)
    states = [tf.constant(rng.normal(size=(4, 4)).astype("float32")) for _ in range(count)]

    def gradients(model):
        with tf.GradientTape() as tape:
            tape.watch([x, *states])
            outputs = model([x, mask, *states])
            loss = sum(tf.reduce_sum(o * o * (k + 1.0)) for k, o in enumerate(outputs))
        return tape.gradient(loss, [x, *states, *model.trainable_variables])

    expected, got = gradients(keras_loop), gradients(shared)
    assert _shared(layers_per_direction(shared)[0]) and not _shared(layers_per_direction(keras_loop)[0])
    assert all(np.abs(np.asarray(g)).max() > 1e-3 for g in expected[:1 + count])  # inputs and states matter
    for e, g in zip(expected, got):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-5, atol=1e-5)
