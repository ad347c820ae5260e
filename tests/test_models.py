import numpy as np
import pytest
from conftest import assert_train_alike

from lstm_models.models.build import UNROLL_MIN_STEPS, ModelSpec, SeriesInputs, TextInputs, build_model, serving_model

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow


def _series_inputs():
    return SeriesInputs(num_features=3, horizon=2, mean=(10.0, 0.0, 0.0), variance=(4.0, 1.0, 1.0))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_forecast_output_shape(cell, depth, seed):
    spec = ModelSpec(task="forecasting", cell=cell, units=(8,) * depth, lookback=5)
    model = build_model(spec, _series_inputs())
    out = model(np.zeros((4, 5, 3), dtype="float32"))
    assert out.shape == (4, 2)
    assert [l.name for l in model.layers if l.name.startswith(cell)] == [f"{cell}_{i + 1}" for i in range(depth)]


def test_text_model_trains_on_ids_and_serves_strings(seed):
    spec = ModelSpec(task="classification", cell="gru", units=(8, 4), bidirectional=True, embedding_dim=6,
                     pooling="mean")
    inputs = TextInputs(vocabulary=("good", "bad", "film"), num_classes=2)
    model = build_model(spec, inputs)
    import tensorflow as tf

    ids = np.array([[2, 4, 0, 0, 0], [3, 3, 4, 1, 1]])  # "good film", "bad bad film never seen"
    served = serving_model(model, inputs)
    probs = np.asarray(served(tf.constant(["good film", "bad bad film never seen"])))
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, np.asarray(model(ids)), atol=1e-6)  # same weights, same answer
    assert model.get_layer("embedding").mask_zero
    assert [l.name for l in served.layers] == ["text", "vectorize", "at_least_one_token", "embedding", "bidirectional_1",
                                               "bidirectional_2", "mean_pool", "probabilities"]
    assert served.get_layer("bidirectional_1") is model.get_layer("bidirectional_1")


def test_mean_pooling_gives_a_text_with_no_token_zeros_and_trains_on_it(seed):
    """A text of punctuation only vectorises to padding alone. Keras's GlobalAveragePooling1D
    divides 0 by 0 there, and the NaN stopped every mean-pooling trial of a data set holding one;
    `MaskedMean` gives zeros, and the other rows exactly what Keras's layer gives them."""
    import keras
    import tensorflow as tf

    from lstm_models.models.layers import MaskedMean

    steps = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    mask = tf.constant([[False] * 4, [True, True, False, False], [True] * 4])
    ours, theirs = (np.asarray(layer(steps, mask=mask)) for layer in (MaskedMean(), keras.layers.GlobalAveragePooling1D()))
    assert np.isnan(theirs[0]).all() and (ours[0] == 0).all()
    np.testing.assert_array_equal(ours[1:], theirs[1:])
    np.testing.assert_array_equal(np.asarray(MaskedMean()(steps)), steps.mean(axis=1))

    spec = ModelSpec(task="classification", cell="lstm", units=(4,), embedding_dim=3, pooling="mean")
    model = build_model(spec, TextInputs(vocabulary=("good", "bad"), num_classes=2), seed=1)
    ids, labels = np.array([[0, 0, 0], [2, 3, 0], [3, 1, 1]]), np.array([1, 0, 1])
    head = model.get_layer("probabilities")
    np.testing.assert_allclose(np.asarray(model(ids))[0], np.asarray(head(np.zeros((1, 4), "float32")))[0], atol=1e-6)
    loss = model.fit(ids, labels, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(loss).all() and all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("cell, gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_parameter_counts_per_cell(cell, gates, seed):
    units, features = 16, 3
    spec = ModelSpec(task="forecasting", cell=cell, units=(units,), lookback=4)
    model = build_model(spec, _series_inputs())
    layer = model.get_layer(f"{cell}_1")
    kernel, recurrent, bias = [w.shape for w in layer.weights]
    assert recurrent == (units, gates * units)  # LSTM 4x, GRU 3x a SimpleRNN's recurrent weights
    assert kernel == (features, gates * units)
    expected_bias = (2, gates * units) if cell == "gru" else (gates * units,)  # reset_after=True
    assert bias == expected_bias
    assert layer.count_params() == gates * (features * units + units * units) + int(np.prod(expected_bias))


def test_forecast_is_in_original_units(seed):
    """The normalisation and its inverse live in the model: a constant-zero net predicts the mean."""
    spec = ModelSpec(task="forecasting", cell="rnn", units=(4,), lookback=3)
    model = build_model(spec, _series_inputs())
    dense = model.get_layer("forecast_scaled")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
    out = np.asarray(model(np.random.default_rng(0).normal(size=(2, 3, 3)).astype("float32")))
    np.testing.assert_allclose(out, 10.0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_xla_only_when_asked(cell):
    spec = ModelSpec(task="forecasting", cell=cell, units=(4,), lookback=3)
    assert build_model(spec, _series_inputs()).jit_compile is False
    assert build_model(spec, _series_inputs(), jit_compile=True).jit_compile is True


def _looped_copy(model):
    """The same network with every recurrent layer run as a loop, and the same weights."""
    import keras

    config = model.get_config()
    for layer in config["layers"]:
        if "unroll" in layer["config"]:
            layer["config"]["unroll"] = False
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_short_windows_unroll_and_compute_what_the_loop_computes(cell, seed):
    """Unrolling is a speed default (make bench): outputs, and training from the same start, match."""
    import keras

    short = ModelSpec(task="forecasting", cell=cell, units=(8, 4), lookback=32, learning_rate=0.01)
    model = build_model(short, _series_inputs())
    assert [l.unroll for l in model.layers if l.name.startswith(cell)] == [True, True]
    long = build_model(ModelSpec(task="forecasting", cell=cell, units=(8,), lookback=33), _series_inputs())
    assert model.get_layer(f"{cell}_1").unroll and not long.get_layer(f"{cell}_1").unroll

    looped = _looped_copy(model)
    assert not any(getattr(l, "unroll", False) for l in looped.layers)
    rng = np.random.default_rng(0)
    x = (10 + 2 * rng.normal(size=(64, 32, 3))).astype("float32")
    y = (10 + 2 * rng.normal(size=(64, 2))).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(looped(x)), rtol=1e-5, atol=1e-5)

    looped.compile(optimizer=keras.optimizers.Adam(0.01, clipnorm=1.0), loss="mse")
    assert_train_alike(model, looped, x, y)


def test_a_short_window_unrolls_only_when_training_is_long_enough_to_pay_for_its_graph(seed):
    short = ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=8)
    unrolled = [build_model(short, _series_inputs(), train_steps=n).get_layer("gru_1").unroll
                for n in (UNROLL_MIN_STEPS - 1, UNROLL_MIN_STEPS, None)]
    assert unrolled == [False, True, True]  # None: nobody said how long it trains


def test_a_sweep_builds_its_models_with_the_batches_they_may_train_on(seed):
    from conftest import toy_series_splits
    from lstm_models.search.hypermodel import SweepHyperModel
    from lstm_models.spec.sweep import parse_sweep
    from lstm_models.tasks import task_for

    task = task_for(toy_series_splits())  # 80 training values
    inputs = task.make_inputs(None)
    for epochs, unrolled in ((40, False), (2000, True)):
        spec = parse_sweep({"name": "u", "task": "forecasting", "dataset": {"kind": "statsmodels", "lookback": 8},
                            "search": {"cells": ["gru"], "units": [4], "depth": 1, "batch_size": 16},
                            "tuner": {"kind": "random", "max_trials": 1, "max_epochs": epochs}})
        hypermodel = SweepHyperModel(spec, inputs, task.batches(inputs))
        model_spec = ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=8, batch_size=16)
        assert hypermodel.train_steps(model_spec) == 5 * epochs  # 72 windows in batches of 16
        assert hypermodel.build_spec(model_spec).get_layer("gru_1").unroll is unrolled


def test_lstm_forget_bias_and_clipnorm(seed):
    spec = ModelSpec(task="forecasting", cell="lstm", units=(4,), lookback=3, unit_forget_bias=False, clipnorm=0.0)
    model = build_model(spec, _series_inputs())
    assert model.get_layer("lstm_1").cell.unit_forget_bias is False
    assert model.optimizer.clipnorm is None
    assert build_model(ModelSpec(task="forecasting", lookback=3), _series_inputs()).optimizer.clipnorm == 1.0


def test_params_hold_only_active_hyperparameters():
    text = ModelSpec(task="classification", cell="gru", units=(64,))
    assert "units_2" not in text.params() and "unit_forget_bias" not in text.params()
    assert "lookback" not in text.params() and text.params()["embedding_dim"] == 64
    series = ModelSpec(task="forecasting", cell="lstm", units=(32, 16), lookback=8)
    p = series.params()
    assert (p["units"], p["units_2"], p["depth"], p["lookback"]) == (32, 16, 2, 8)
    assert "units_3" not in p and "embedding_dim" not in p and "bidirectional" not in p
    assert p["unit_forget_bias"] is True
    assert series.label() == "lstm 32+16 lb8 do0"


@pytest.mark.parametrize("task", ["classification", "forecasting"])
def test_training_creates_no_variable_so_the_train_step_is_traced_once(task, seed):
    """A trace that creates variables (the optimizer's slots, a metric named by a string) makes
    TensorFlow trace the step a second time: `build_model` creates them all beforehand."""
    import tensorflow as tf

    if task == "classification":
        inputs, x = TextInputs(vocabulary=("good", "bad", "film"), num_classes=2), np.array([[2, 4, 0], [3, 3, 4]])
        y = np.array([1, 0])
    else:
        inputs, x, y = _series_inputs(), np.zeros((2, 5, 3), dtype="float32"), np.zeros((2, 2), dtype="float32")
    model = build_model(ModelSpec(task=task, cell="gru", units=(4,), lookback=5, embedding_dim=4), inputs)
    assert model.optimizer.built
    created = []

    def record(next_creator, **kwargs):
        created.append(kwargs.get("name"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(record):
        history = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert created == []
    metrics = ["accuracy"] if task == "classification" else ["rmse", "mae"]
    assert set(history.history) == {"loss", "val_loss", *metrics, *(f"val_{m}" for m in metrics)}


def test_text_models_skip_grappler_and_forecasting_models_keep_it(seed):
    """Grappler is one process-wide setting: each build sets it for its task, and a text model's
    graph then runs as traced, with the same result (loss and weights after a step) as optimised."""
    import tensorflow as tf

    text = TextInputs(vocabulary=("good", "bad", "film"), num_classes=2)
    spec = ModelSpec(task="classification", cell="lstm", units=(4,), embedding_dim=4)
    x, y = np.array([[2, 4, 0], [3, 3, 4]]), np.array([1, 0])

    def one_step(inputs, spec):
        model = build_model(spec, inputs, seed=7)
        skipped = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
        loss = model.fit(x if inputs is text else np.zeros((2, 5, 3)), y if inputs is text else np.zeros((2, 2)),
                         epochs=1, verbose=0).history["loss"][0]
        return skipped, loss, model.get_weights()

    skipped, loss, weights = one_step(text, spec)
    assert skipped is True
    assert one_step(_series_inputs(), ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=5))[0] is False
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})  # the text model optimised
    model = build_model(spec, text, seed=7)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    assert np.isclose(model.fit(x, y, epochs=1, verbose=0).history["loss"][0], loss, rtol=1e-5)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
