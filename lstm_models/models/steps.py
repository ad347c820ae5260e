"""One time step of each cell in TensorFlow, forward and backward, for the shared loops.

The shared loop (`lstm_models.models.loops`) hands a step the input's projection for that step,
``p_t = x_t W + b`` (computed for all steps at once), and the previous states. A forward step
returns the new states and what its backward step needs (the activated gates); a backward step
turns the gradient that reaches the new states into the gradient of ``p_t`` (``dp``), of the
recurrent product's input (``dm``: ``h_{t-1} U`` plus the GRU's recurrent bias) and of the
previous states. The loop sums ``dm`` into the recurrent kernel's gradient in one matrix product
after the loop, and ``dp`` into the kernel's and the bias's.

The equations are Keras's own (`lstm_models.models.cells` writes them out); their derivatives are
the usual ones, checked against TensorFlow's automatic ones in the tests.
"""

from __future__ import annotations


def lstm_forward(projected, states, recurrent, bias):
    import tensorflow as tf

    h, c = states
    zi, zf, zg, zo = tf.split(projected + tf.matmul(h, recurrent), 4, axis=1)  # Keras's order: i, f, c, o
    i, f, g, o = tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zg), tf.sigmoid(zo)
    c = f * c + i * g
    return (o * tf.tanh(c), c), tf.concat([i, f, g, o], axis=1)


def lstm_backward(gates, previous, new, grads, recurrent):
    """``grads``: the gradients of the new (h, c); ``previous`` and ``new``: the states."""
    import tensorflow as tf

    i, f, g, o = tf.split(gates, 4, axis=1)
    (dh, dc), (_, c_prev), (_, c) = grads, previous, new
    tanh_c = tf.tanh(c)
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
    dz = tf.concat([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g * g),
                    dh * tanh_c * o * (1.0 - o)], axis=1)
    return dz, dz, (tf.matmul(dz, recurrent, transpose_b=True), dc * f)


def gru_forward(projected, states, recurrent, bias):
    import tensorflow as tf

    (h,) = states
    x_z, x_r, x_h = tf.split(projected, 3, axis=1)
    r_z, r_r, r_h = tf.split(tf.matmul(h, recurrent) + bias[1], 3, axis=1)  # bias[1]: the recurrent bias
    z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
    n = tf.tanh(x_h + r * r_h)
    return (z * h + (1.0 - z) * n,), tf.concat([z, r, n, r_h], axis=1)


def gru_backward(gates, previous, new, grads, recurrent):
    import tensorflow as tf

    z, r, n, r_h = tf.split(gates, 4, axis=1)
    (dh,), (h_prev,) = grads, previous
    dz = dh * (h_prev - n) * z * (1.0 - z)
    dn = dh * (1.0 - z) * (1.0 - n * n)
    dr = dn * r_h * r * (1.0 - r)
    dm = tf.concat([dz, dr, dn * r], axis=1)
    return tf.concat([dz, dr, dn], axis=1), dm, (dh * z + tf.matmul(dm, recurrent, transpose_b=True),)


def rnn_forward(projected, states, recurrent, bias):
    import tensorflow as tf

    (h,) = states
    return (tf.tanh(projected + tf.matmul(h, recurrent)),), None  # its backward needs only the new h


def rnn_backward(gates, previous, new, grads, recurrent):
    import tensorflow as tf

    (dh,), (h,) = grads, new
    da = dh * (1.0 - h * h)
    return da, da, (tf.matmul(da, recurrent, transpose_b=True),)


STEPS = {"lstm": (lstm_forward, lstm_backward), "gru": (gru_forward, gru_backward), "rnn": (rnn_forward, rnn_backward)}
