"""Recurrent loops traced once per process, shared by every model of a sweep.

Keras traces a new model's train and test steps op by op, and most of that trace is the
recurrent loop and its gradient (a TensorFlow while loop and its while-loop gradient): 1-4 s of
every trial on 2 cores, as long as a few epochs on short sentences. The loop's arithmetic is
the same for every model with that cell; only the weights' shapes differ. So here each cell's
loop is one `tf.function` with shape-free inputs (the layer's weights are arguments, not
captured), traced once per process with its gradient, and each model's step only calls it.

The function is Keras's own (`lstm_models.models.cells` writes out the equations; the tests
check outputs and gradients against Keras's loop, masks, both directions and sequences
included). Two things differ in how it is computed, not in what: the input's projection
``x W + b`` is one matrix product over all time steps before the loop instead of one per
step, and a step's output at a masked step is taken after the loop. `build_model` uses it for
text models (``TextInputs.shares_loops``; short forecasting windows trained slower with it), on
CPU only (a GPU has cuDNN's kernel), never for an XLA-compiled model, and only for layers it
computes exactly: default activations, no recurrent or in-cell dropout, GRU with
``reset_after``, not unrolled, not stateful. Other layers keep Keras's loop. The layer's class
and config are Keras's own, so a saved ``model.keras`` loads in plain Keras, which runs its own
loop.
"""

from __future__ import annotations

import functools

import keras

from lstm_models.models.cells import KINDS, STATES


def share_loops(model: keras.Model) -> keras.Model:
    """Have every recurrent layer of ``model`` that the shared loops compute exactly use them.

    The layer keeps its class: only this object's ``inner_loop`` (the public method through which
    `keras.layers.RNN` runs its loop) is replaced, so its config, weights and saved files are
    Keras's own."""
    for layer in layers_per_direction(model):
        if shares(layer):
            layer.inner_loop = functools.partial(_shared_inner_loop, layer)
    return model


def layers_per_direction(model: keras.Model) -> list:
    """The model's Keras recurrent layers, both of a ``Bidirectional`` wrapper's included."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            out += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.RNN):
            out.append(layer)
    return out


def shares(layer) -> bool:
    """Whether the shared loop computes this Keras recurrent layer exactly."""
    cell = layer.cell
    kind = KINDS.get(type(cell).__name__)
    if kind is None or layer.unroll or layer.stateful or not cell.use_bias or layer.compute_dtype != "float32":
        return False
    gated = kind == "rnn" or _name(cell.recurrent_activation) == "sigmoid"
    return (gated and _name(cell.activation) == "tanh" and not cell.dropout and not cell.recurrent_dropout
            and (kind != "gru" or cell.reset_after))


def _name(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def _shared_inner_loop(layer, sequences, initial_state, mask, training=False):
    """`keras.layers.RNN.inner_loop`'s contract: ``(last_output, outputs, states)``."""
    import tensorflow as tf

    cell, kind = layer.cell, KINDS[type(layer.cell).__name__]
    mask = mask[0] if isinstance(mask, (list, tuple)) else mask
    if mask is None:
        mask = tf.ones(tf.shape(sequences)[:2], tf.bool)
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    x, mask = tf.convert_to_tensor(sequences), tf.cast(mask, tf.bool)
    if layer.go_backwards:  # Keras reads the sequence last step first and returns it in that order
        x, mask = tf.reverse(x, [1]), tf.reverse(mask, [1])
    loop = _loop(kind, bool(layer.return_sequences))
    last, outputs, *final = loop(x, mask, cell.kernel.value, cell.recurrent_kernel.value, cell.bias.value, *states)
    # The loop's outputs have no static shape; Keras's have, and code that traces a layer reads it
    # (the gradient probe sizes its Jacobians by the units)
    batch, steps = x.shape[0], x.shape[1] if layer.return_sequences else 1
    for state in [last, *final]:
        state.set_shape([batch, cell.units])
    outputs.set_shape([batch, steps, cell.units])
    if layer.return_sequences and layer.zero_output_for_mask:
        outputs = tf.where(mask[:, :, None], outputs, tf.zeros_like(outputs))
    return last, outputs, final


@functools.cache
def _loop(kind: str, sequences: bool):
    """The cell's loop as a `tf.function` over any batch, length and size: ``(x, mask, kernel,
    recurrent_kernel, bias, *states) -> (last output, outputs, *final states)``; ``outputs`` is
    ``(batch, time, units)`` when ``sequences``, else the last output with a time axis of one."""
    import tensorflow as tf

    step = {"lstm": _lstm_step, "gru": _gru_step, "rnn": _rnn_step}[kind]
    matrix, vector = tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.float32)
    signature = [tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None, None], tf.bool),
                 matrix, matrix, matrix if kind == "gru" else vector] + [matrix] * len(STATES[kind])

    @tf.function(input_signature=signature, autograph=False)
    def loop(x, mask, kernel, recurrent, bias, *states):
        input_bias = bias[0] if kind == "gru" else bias  # GRU: (input bias, recurrent bias)
        time_major = tf.transpose(x, [1, 0, 2])
        steps, batch = tf.shape(time_major)[0], tf.shape(time_major)[1]
        projected = tf.reshape(tf.matmul(tf.reshape(time_major, [steps * batch, -1]), kernel) + input_bias,
                               [steps, batch, tf.shape(kernel)[1]])
        inputs = tf.TensorArray(tf.float32, size=steps).unstack(projected)
        units = tf.shape(recurrent)[0]  # each step's mask as wide as the state: a select without broadcasting,
        # whose gradient then needs no sum over the broadcast axis (Keras tiles it too)
        masks = tf.TensorArray(tf.bool, size=steps).unstack(
            tf.broadcast_to(tf.transpose(mask)[:, :, None], [steps, batch, units]))
        written = tf.TensorArray(tf.float32, size=steps if sequences else 0)

        def body(t, written, *states):
            keep = masks.read(t)
            new = step(inputs.read(t), states, recurrent, bias)
            states = tuple(tf.where(keep, n, s) for n, s in zip(new, states))
            return (t + 1, written.write(t, states[0]) if sequences else written) + states

        _, written, *final = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), written, *states),
                                           parallel_iterations=32, swap_memory=True)
        # Keras's output at a masked step is the one before it, and zeros before the first real step
        seen = tf.cast(tf.math.cumsum(tf.cast(mask, tf.int32), axis=1), tf.bool)
        last = tf.where(seen[:, -1:], final[0], tf.zeros_like(final[0]))
        if not sequences:
            return (last, last[:, None, :], *final)
        outputs = tf.where(seen[:, :, None], tf.transpose(written.stack(), [1, 0, 2]), 0.0)
        return (last, outputs, *final)

    return loop


def _lstm_step(projected, states, recurrent, bias):
    import tensorflow as tf

    h, c = states
    i, f, g, o = tf.split(projected + tf.matmul(h, recurrent), 4, axis=1)  # Keras's order: i, f, c, o
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def _gru_step(projected, states, recurrent, bias):
    import tensorflow as tf

    (h,) = states
    x_z, x_r, x_h = tf.split(projected, 3, axis=1)
    r_z, r_r, r_h = tf.split(tf.matmul(h, recurrent) + bias[1], 3, axis=1)
    z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
    return (z * h + (1.0 - z) * tf.tanh(x_h + r * r_h),)


def _rnn_step(projected, states, recurrent, bias):
    import tensorflow as tf

    (h,) = states
    return (tf.tanh(projected + tf.matmul(h, recurrent)),)
