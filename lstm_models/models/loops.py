"""Recurrent loops traced once per process, shared by every model of a sweep.

Keras traces a new model's train and test steps op by op, and most of that trace is the
recurrent loop and its gradient (a TensorFlow while loop and its while-loop gradient): 1-4 s of
every trial on 2 cores, as long as a few epochs on short sentences. The loop's arithmetic is
the same for every model with that cell; only the weights' shapes differ. So here each cell's
loop is one `tf.function` with shape-free inputs (the layer's weights are arguments, not
captured), traced once per process with its gradient, and each model's step only calls it.

The function is Keras's own (`lstm_models.models.cells` writes out the equations; the tests
check outputs and gradients against Keras's loop, masks, both directions, sequences and states
included). Three things differ in how it is computed, not in what: the input's projection
``x W + b`` is one matrix product over all time steps before the loop instead of one per
step; a step's output at a masked step is taken after the loop; and the gradient is written
out (`_loop_gradient`, `lstm_models.models.steps`) instead of TensorFlow's while-loop gradient.
That gradient was slow here because the input signature has no static batch size: the same LSTM
loop and gradient took 25% less time when the batch size was static (78 against 58 ms, 200 steps of
64), but a sweep's last batches have every size. Written out, a backward step is the cell's
derivative and one matrix product, and the weights' gradients are one product each after the
loop. Side by side with TensorFlow's gradient of the same loop (2026-12-02, 200 and 32 tokens,
batches of 64), whole text models trained 1.07-1.25x as fast and their first epoch took 10-27%
less. `build_model` uses it for
text models, and for forecasting models in small batches (``shares_loops`` of their inputs), on
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
from lstm_models.models.steps import STEPS


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
    last, outputs, *final = _run(kind, bool(layer.return_sequences), x, mask, cell.kernel.value,
                                 cell.recurrent_kernel.value, cell.bias.value, *states)
    # The loop's outputs have no static shape; Keras's have, and code that traces a layer reads it
    # (the gradient probe sizes its Jacobians by the units)
    batch, steps = x.shape[0], x.shape[1] if layer.return_sequences else 1
    for state in [last, *final]:
        state.set_shape([batch, cell.units])
    outputs.set_shape([batch, steps, cell.units])
    if layer.return_sequences and layer.zero_output_for_mask:
        outputs = tf.where(mask[:, :, None], outputs, tf.zeros_like(outputs))
    return last, outputs, final


def _run(kind: str, sequences: bool, x, mask, kernel, recurrent, bias, *states):
    """The shared loop, differentiated by `_loop_gradient`: ``(last output, outputs, *final states)``."""
    import tensorflow as tf

    @tf.custom_gradient
    def run(x, kernel, recurrent, bias, *states):
        # The forward call sees no input a tape watches, so TensorFlow runs it as it is, not a
        # copy that keeps every step's intermediates for its own while-loop gradient
        last, outputs, *rest = _loop(kind, sequences)(*(tf.stop_gradient(t) for t in (x, mask, kernel, recurrent,
                                                                                        bias, *states)))
        final, rows = rest[:-1], rest[-1]

        def grad(d_last, d_outputs, *d_final):
            ds = [tf.zeros_like(t) if d is None else d for d, t in zip((d_last, d_outputs, *d_final),
                                                                       (last, outputs, *final))]
            return _loop_gradient(kind, sequences)(x, mask, kernel, recurrent, rows, *ds)

        return (last, outputs, *final), grad

    return run(x, kernel, recurrent, bias, *states)


@functools.cache
def _loop(kind: str, sequences: bool):
    """The cell's loop as a `tf.function` over any batch, length and size: ``(x, mask, kernel,
    recurrent_kernel, bias, *states) -> (last output, outputs, *final states, rows)``; ``outputs``
    is ``(batch, time, units)`` when ``sequences``, else the last output with a time axis of one.
    ``rows`` (time, batch, width) is what `_loop_gradient` needs of each step, in one write: the
    states before it, the states after it, then the gates the cell opened (`_pieces`)."""
    import tensorflow as tf

    forward = STEPS[kind][0]

    @tf.function(input_signature=_specs(3, "mask", 2, 2, 2 if kind == "gru" else 1, *[2] * len(STATES[kind])),
                 autograph=False)
    def loop(x, mask, kernel, recurrent, bias, *states):
        input_bias = bias[0] if kind == "gru" else bias  # GRU: (input bias, recurrent bias)
        units = tf.shape(recurrent)[0]
        inputs, masks, steps = _per_step(x, mask, kernel, input_bias, units)

        def body(t, rows, *states):
            new, opened = forward(inputs.read(t), states, recurrent, bias)
            new = [tf.where(masks.read(t), n, s) for n, s in zip(new, states)]
            return (t + 1, rows.write(t, tf.concat([*states, *new] + ([opened] if kind != "rnn" else []), 1)), *new)

        _, rows, *final = tf.while_loop(lambda t, *_: t < steps, body,
                                        (tf.constant(0), tf.TensorArray(tf.float32, size=steps), *states),
                                        parallel_iterations=32, swap_memory=True)
        rows = rows.stack()
        # Keras's output at a masked step is the one before it, and zeros before the first real step
        seen = _seen(mask)
        last = tf.where(seen[:, -1:], final[0], tf.zeros_like(final[0]))
        if not sequences:
            return (last, last[:, None, :], *final, rows)
        after = len(STATES[kind]) * units  # the first state (h) after each step
        outputs = tf.where(seen[:, :, None], tf.transpose(rows[:, :, after:after + units], [1, 0, 2]), 0.0)
        return (last, outputs, *final, rows)

    return loop


@functools.cache
def _loop_gradient(kind: str, sequences: bool):
    """The gradient of `_loop` by backpropagation through time, written out: ``(x, mask, kernel,
    recurrent_kernel, rows, d_last, d_outputs, *d_final) -> (dx, d_kernel, d_recurrent_kernel,
    d_bias, *d_initial states)``. A step only turns the gradient of its new states into that of
    its pre-activations and previous states (`lstm_models.models.steps`); the weights' gradients
    are each one matrix product over all steps, after the loop."""
    import tensorflow as tf

    backward, count = STEPS[kind][1], len(STATES[kind])

    @tf.function(input_signature=_specs(3, "mask", 2, 2, 3, 2, 3, *[2] * count), autograph=False)
    def gradient(x, mask, kernel, recurrent, rows, d_last, d_outputs, *d_final):
        seen, units = _seen(mask), tf.shape(recurrent)[0]
        steps = tf.shape(rows)[0]
        # The last output is the last h, where a real step came before
        d_last = tf.where(seen[:, -1:], d_last + (0.0 if sequences else d_outputs[:, 0]), 0.0)
        grads = (d_final[0] + d_last, *d_final[1:])
        if sequences:  # each step's output is its new h
            d_outs = tf.TensorArray(tf.float32, size=steps).unstack(
                tf.transpose(tf.where(seen[:, :, None], d_outputs, 0.0), [1, 0, 2]))
        masks = _step_masks(mask, units)
        at = tf.TensorArray(tf.float32, size=steps).unstack(rows)
        dp_all, dm_all = tf.TensorArray(tf.float32, size=steps), tf.TensorArray(tf.float32, size=steps)

        def body(t, dp_all, dm_all, *grads):
            if sequences:
                grads = (grads[0] + d_outs.read(t), *grads[1:])
            keep = masks.read(t)
            previous, new, opened = _pieces(at.read(t), count, units, kind)
            dp, dm, back = backward(opened, previous, new, [tf.where(keep, g, 0.0) for g in grads], recurrent)
            back = tuple(tf.where(keep, b, g) for b, g in zip(back, grads))  # a masked step passes them on
            return (t - 1, dp_all.write(t, dp), dm_all.write(t, dm) if kind == "gru" else dm_all) + back

        _, dp_all, dm_all, *d_initial = tf.while_loop(lambda t, *_: t >= 0, body, (steps - 1, dp_all, dm_all, *grads),
                                                      parallel_iterations=32, swap_memory=True)
        dp = _flat(dp_all.stack())
        dm = _flat(dm_all.stack()) if kind == "gru" else dp  # the same for LSTM and SimpleRNN
        dx = tf.reshape(tf.matmul(dp, kernel, transpose_b=True), [steps, -1, tf.shape(x)[2]])
        d_bias = tf.reduce_sum(dp, 0)
        d_bias = tf.stack([d_bias, tf.reduce_sum(dm, 0)]) if kind == "gru" else d_bias
        before = _flat(rows[:, :, :units])  # h before each step
        return (tf.transpose(dx, [1, 0, 2]), tf.matmul(_flat(tf.transpose(x, [1, 0, 2])), dp, transpose_a=True),
                tf.matmul(before, dm, transpose_a=True), d_bias, *d_initial)

    return gradient


def _pieces(row, count: int, units, kind: str):
    """A step's row: (states before it, states after it, the gates it opened, or None)."""
    import tensorflow as tf

    sizes = [units] * (2 * count) + ([-1] if kind != "rnn" else [])
    parts = tf.split(row, tf.stack(sizes), num=len(sizes), axis=1)
    return parts[:count], parts[count:2 * count], parts[2 * count] if kind != "rnn" else None


def _specs(*ranks) -> list:
    """A shape-free input signature: a float tensor of each rank, or a bool matrix for ``"mask"``."""
    import tensorflow as tf

    return [tf.TensorSpec([None, None], tf.bool) if r == "mask" else tf.TensorSpec([None] * r, tf.float32)
            for r in ranks]


def _per_step(x, mask, kernel, bias, units):
    """Each step's input projection ``x_t W + b`` (one product for all steps) and mask (`_step_masks`)."""
    import tensorflow as tf

    time_major = tf.transpose(x, [1, 0, 2])
    steps, batch = tf.shape(time_major)[0], tf.shape(time_major)[1]
    projected = tf.reshape(tf.matmul(_flat(time_major), kernel) + bias, [steps, batch, tf.shape(kernel)[1]])
    return tf.TensorArray(tf.float32, size=steps).unstack(projected), _step_masks(mask, units), steps


def _step_masks(mask, units):
    """Each step's mask as wide as the state, read by step: a select without broadcasting (Keras
    tiles it too)."""
    import tensorflow as tf

    steps, batch = tf.shape(mask)[1], tf.shape(mask)[0]
    return tf.TensorArray(tf.bool, size=steps).unstack(tf.broadcast_to(tf.transpose(mask)[:, :, None],
                                                                       [steps, batch, units]))


def _seen(mask):
    """Whether a real step came at or before each step."""
    import tensorflow as tf

    return tf.cast(tf.math.cumsum(tf.cast(mask, tf.int32), axis=1), tf.bool)


def _flat(t):
    """``(time, batch, width)`` -> ``(time * batch, width)``."""
    import tensorflow as tf

    return tf.reshape(t, [-1, tf.shape(t)[-1]])
