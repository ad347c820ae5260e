"""The NumPy step equations against the real Keras layers, to 1e-5."""

import keras
import numpy as np
import pytest
from keras import layers

from lstm_models.models.cells import GATES, cell_kind, run_bidirectional, run_reference
from lstm_models.models.build import CELLS

ATOL = 1e-5


def _randomise_biases(layer, rng):
    """Non-zero biases, so that a wrong bias slice (GRU input vs recurrent) cannot pass."""
    weights = layer.get_weights()
    weights[-1] = rng.normal(0, 0.5, weights[-1].shape).astype("float32")
    layer.set_weights(weights)


def _layer(cell, units, x, rng, **kwargs):
    layer = CELLS[cell](units, return_sequences=True, **kwargs)
    layer(x[:1])
    _randomise_biases(layer, rng)
    return layer


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_reference_matches_keras_and_returns_every_gate(cell, seed):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 4)).astype("float32")
    layer = _layer(cell, 5, x, rng)
    ref = run_reference(layer, x)
    assert sorted(ref) == sorted(GATES[cell])
    assert all(v.shape == (3, 7, 5) and v.dtype == np.float32 for v in ref.values())
    np.testing.assert_allclose(ref["h"], np.asarray(layer(x)), atol=ATOL, rtol=0)
    if cell == "lstm":  # the cell-state update and h = o * tanh(C), step by step
        c_prev = np.concatenate([np.zeros((3, 1, 5)), ref["c"][:, :-1]], axis=1)
        np.testing.assert_allclose(ref["c"], ref["f"] * c_prev + ref["i"] * ref["c_tilde"], atol=1e-6)
        np.testing.assert_allclose(ref["h"], ref["o"] * np.tanh(ref["c"]), atol=1e-6)
    if cell == "gru":
        h_prev = np.concatenate([np.zeros((3, 1, 5)), ref["h"][:, :-1]], axis=1)
        np.testing.assert_allclose(ref["h"], ref["z"] * h_prev + (1 - ref["z"]) * ref["h_tilde"], atol=1e-6)
    gates = [g for g in GATES[cell] if g in ("f", "i", "o", "z", "r")]
    assert all(0.0 < ref[g].min() and ref[g].max() < 1.0 for g in gates)


def test_lstm_forget_bias_one_opens_the_forget_gate(seed):
    x = np.zeros((1, 2, 3), dtype="float32")
    layer = layers.LSTM(4, return_sequences=True, unit_forget_bias=True)
    layer(x)
    ref = run_reference(layer, x)  # zero input, zero state: f = sigmoid(1), i = sigmoid(0)
    np.testing.assert_allclose(ref["f"][0, 0], 1 / (1 + np.exp(-1.0)), atol=1e-7)
    np.testing.assert_allclose(ref["i"][0, 0], 0.5, atol=1e-7)


def test_gru_kernel_order_is_z_r_h_with_reset_after(seed):
    layer = layers.GRU(2, return_sequences=True)
    x = np.zeros((1, 1, 1), dtype="float32")
    layer(x)
    assert layer.cell.reset_after and layer.get_weights()[2].shape == (2, 6)
    kernel, recurrent, bias = layer.get_weights()
    bias[:] = 0.0
    bias[0, :2] = 5.0  # input bias of the first block only: it must be z (sigmoid(5))
    layer.set_weights([kernel, recurrent, bias])
    ref = run_reference(layer, x)
    np.testing.assert_allclose(ref["z"][0, 0], 1 / (1 + np.exp(-5.0)), atol=1e-6)
    np.testing.assert_allclose(ref["r"][0, 0], 0.5, atol=1e-7)
    np.testing.assert_allclose(ref["h"], np.asarray(layer(x)), atol=ATOL)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_masked_steps_carry_state_and_output(cell, seed):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 0]], dtype=bool)
    layer = _layer(cell, 4, x, rng)
    ref = run_reference(layer, x, mask)
    keras_out = np.asarray(layer(x, mask=mask))
    np.testing.assert_allclose(ref["h"], keras_out, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(ref["h"][0, 4], ref["h"][0, 3])  # masked: the output is carried
    np.testing.assert_array_equal(ref["h"][1, 1], ref["h"][1, 0])
    if cell != "rnn":
        first_gate = GATES[cell][0]
        assert np.isnan(ref[first_gate][0, 4:]).all() and not np.isnan(ref[first_gate][0, :4]).any()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_stacked_layers_fed_the_previous_output(cell, seed):
    rng = np.random.default_rng(2)
    inputs = keras.Input((5, 3))
    first = CELLS[cell](6, return_sequences=True, name="first")
    second = CELLS[cell](4, return_sequences=True, name="second")
    model = keras.Model(inputs, second(first(inputs)))
    for layer in (first, second):
        _randomise_biases(layer, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    h1 = run_reference(first, x)["h"]
    h2 = run_reference(second, h1)["h"]
    np.testing.assert_allclose(h2, np.asarray(model(x)), atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("masked", [False, True])
def test_each_direction_of_a_bidirectional_wrapper(cell, masked, seed):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=bool) if masked else None
    wrapper = layers.Bidirectional(CELLS[cell](4, return_sequences=True))
    wrapper(x)
    _randomise_biases(wrapper.forward_layer, rng)
    _randomise_biases(wrapper.backward_layer, rng)
    both = run_bidirectional(wrapper, x, mask)
    out = np.asarray(wrapper(x, mask=mask))
    np.testing.assert_allclose(both["forward"]["h"], out[..., :4], atol=ATOL, rtol=0)
    np.testing.assert_allclose(both["backward"]["h"], out[..., 4:], atol=ATOL, rtol=0)
    # The backward direction is the same equations run on the input reversed in time.
    alone = CELLS[cell](4, return_sequences=True)
    alone(x)
    alone.set_weights(wrapper.backward_layer.get_weights())
    np.testing.assert_allclose(both["backward"]["h"][:1], run_reference(alone, x[:1, ::-1])["h"][:, ::-1],
                               atol=1e-6)
    if masked:  # the wrapper zeroes the outputs of masked steps
        np.testing.assert_array_equal(out[1, 3:], 0.0)


def test_cell_kind_refuses_other_layers():
    with pytest.raises(TypeError, match="expected a Keras LSTM, GRU or SimpleRNN layer, got Dense"):
        cell_kind(layers.Dense(2))
