"""The step equations of the three cells in NumPy, driven by a Keras layer's own weights.

What Keras computes at inference (no dropout), written out so that every gate can be looked at:

LSTM (kernel and bias in the order i, f, c, o; ``recurrent_activation`` sigmoid by default)::

    i_t  = sigmoid(x_t W_i + h_{t-1} U_i + b_i)        input gate
    f_t  = sigmoid(x_t W_f + h_{t-1} U_f + b_f)        forget gate
    C~_t = tanh(x_t W_c + h_{t-1} U_c + b_c)           candidate
    C_t  = f_t * C_{t-1} + i_t * C~_t                  cell state
    o_t  = sigmoid(x_t W_o + h_{t-1} U_o + b_o)        output gate
    h_t  = o_t * tanh(C_t)

GRU (Keras 3 order z, r, h; ``reset_after=True``: the bias is (2, 3 units), input and recurrent)::

    z_t  = sigmoid(x_t W_z + b_z + h_{t-1} U_z + b'_z)             update gate
    r_t  = sigmoid(x_t W_r + b_r + h_{t-1} U_r + b'_r)             reset gate
    h~_t = tanh(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))        candidate
    h_t  = z_t * h_{t-1} + (1 - z_t) * h~_t

SimpleRNN::

    h_t  = tanh(x_t W + h_{t-1} U + b)

Masking follows Keras: at a masked step the states are carried over unchanged and the output is
the previous output (or zeros when the layer has ``zero_output_for_mask``, as a Bidirectional
wrapper sets for sequences); gates and candidates are NaN there, since none was applied.
"""

from __future__ import annotations

import numpy as np

GATES = {
    "lstm": ("f", "i", "c_tilde", "c", "o", "h"),
    "gru": ("z", "r", "h_tilde", "h"),
    "rnn": ("h",),
}
STATES = {"lstm": ("c", "h"), "gru": ("h",), "rnn": ("h",)}
KINDS = {"LSTMCell": "lstm", "GRUCell": "gru", "SimpleRNNCell": "rnn"}  # Keras cell class -> kind

_ACTIVATIONS = {
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "linear": lambda a: a,
}


def cell_kind(layer) -> str:
    """``lstm``, ``gru`` or ``rnn`` for a Keras LSTM, GRU or SimpleRNN layer (or its cell)."""
    name = type(getattr(layer, "cell", layer)).__name__
    if name not in KINDS:
        raise TypeError(f"expected a Keras LSTM, GRU or SimpleRNN layer, got {type(layer).__name__}")
    return KINDS[name]


def run_reference(layer, x, mask=None) -> dict[str, np.ndarray]:
    """Run a recurrent layer's step equations in NumPy and return every gate and state.

    Args:
        layer: a built Keras ``LSTM``, ``GRU`` or ``SimpleRNN`` layer (not a Bidirectional
            wrapper: see `run_bidirectional`).
        x: the layer's input, ``(batch, time, features)``.
        mask: optional ``(batch, time)`` booleans, True where a step is real.

    Returns:
        ``{name: (batch, time, units) float32}``: for LSTM ``f``, ``i``, ``c_tilde``, ``c``,
        ``o``, ``h``; for GRU ``z``, ``r``, ``h_tilde``, ``h``; for SimpleRNN ``h``. ``h`` is the
        layer's output sequence. For a layer with ``go_backwards`` the time axis runs from the
        last input step to the first, as the layer's own output does.
    """
    kind = cell_kind(layer)
    cell = layer.cell
    x = np.asarray(x, dtype="float64")
    if x.ndim != 3:
        raise ValueError(f"x must be (batch, time, features), got shape {x.shape}")
    batch, steps, _ = x.shape
    mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
    if getattr(layer, "go_backwards", False):
        x, mask = x[:, ::-1], mask[:, ::-1]
    weights = [np.asarray(w, dtype="float64") for w in cell.get_weights()]
    step = {"lstm": _lstm_step, "gru": _gru_step, "rnn": _rnn_step}[kind]
    act = _activation(cell.activation)
    rec_act = _activation(cell.recurrent_activation) if kind != "rnn" else None
    units = cell.units
    state = {name: np.zeros((batch, units)) for name in STATES[kind]}
    out = {name: np.full((batch, steps, units), np.nan) for name in GATES[kind]}
    h_out = np.zeros((batch, units))
    zero_masked = bool(getattr(layer, "zero_output_for_mask", False))
    for t in range(steps):
        values = step(cell, weights, x[:, t], state, act, rec_act)
        keep = mask[:, t][:, None]
        for name in STATES[kind]:
            state[name] = np.where(keep, values[name], state[name])
        h_out = np.where(keep, values["h"], 0.0 if zero_masked else h_out)
        for name in GATES[kind]:
            if name in STATES[kind]:
                out[name][:, t] = state[name]
            else:
                out[name][:, t] = np.where(keep, values[name], np.nan)
        out["h"][:, t] = h_out
    return {name: value.astype("float32") for name, value in out.items()}


def run_bidirectional(wrapper, x, mask=None) -> dict[str, dict[str, np.ndarray]]:
    """`run_reference` for both directions of a Keras ``Bidirectional`` wrapper.

    Returns:
        ``{"forward": {...}, "backward": {...}}``, both in the input's time order, so that the
        wrapper's output (``merge_mode="concat"``) is ``concat([forward h, backward h], -1)``.
    """
    forward = run_reference(wrapper.forward_layer, x, mask)
    backward = run_reference(wrapper.backward_layer, x, mask)
    return {"forward": forward, "backward": {k: v[:, ::-1] for k, v in backward.items()}}


def _activation(fn):
    name = getattr(fn, "__name__", str(fn))
    if name not in _ACTIVATIONS:
        raise ValueError(f"no NumPy reference for activation {name!r}; known: {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def _lstm_step(cell, weights, x_t, state, act, rec_act):
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if cell.use_bias else 0.0
    a = x_t @ kernel + state["h"] @ recurrent + bias
    a_i, a_f, a_c, a_o = np.split(a, 4, axis=1)
    i, f, c_tilde, o = rec_act(a_i), rec_act(a_f), act(a_c), rec_act(a_o)
    c = f * state["c"] + i * c_tilde
    return {"i": i, "f": f, "c_tilde": c_tilde, "c": c, "o": o, "h": o * act(c)}


def _gru_step(cell, weights, x_t, state, act, rec_act):
    kernel, recurrent = weights[0], weights[1]
    units, h_prev = cell.units, state["h"]
    if cell.use_bias:
        bias = weights[2]
        in_bias, rec_bias = (bias[0], bias[1]) if cell.reset_after else (bias, np.zeros(3 * units))
    else:
        in_bias = rec_bias = np.zeros(3 * units)
    x_z, x_r, x_h = np.split(x_t @ kernel + in_bias, 3, axis=1)
    inner = h_prev @ recurrent[:, : 2 * units] + rec_bias[: 2 * units]
    z = rec_act(x_z + inner[:, :units])
    r = rec_act(x_r + inner[:, units:])
    if cell.reset_after:
        h_rec = r * (h_prev @ recurrent[:, 2 * units:] + rec_bias[2 * units:])
    else:
        h_rec = (r * h_prev) @ recurrent[:, 2 * units:]
    h_tilde = act(x_h + h_rec)
    return {"z": z, "r": r, "h_tilde": h_tilde, "h": z * h_prev + (1.0 - z) * h_tilde}


def _rnn_step(cell, weights, x_t, state, act, rec_act):
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if cell.use_bias else 0.0
    return {"h": act(x_t @ kernel + state["h"] @ recurrent + bias)}
