"""Adam's update of a variable as TensorFlow's one fused op, not Keras's twenty-odd.

Keras's `keras.optimizers.Adam.update_step` writes each variable's update out of Keras ops:
casts, two powers, the moments' updates, a square root, a division, three assignments. A model's
train step therefore holds about 20 graph ops per variable that each trial traces, instantiates
and, every batch, runs one by one. TensorFlow's ``ResourceApplyAdam`` kernel is the same
arithmetic in one op (its documentation and Keras's `update_step` give the same formulas:
``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, ``m += (g - m)(1 - beta_1)``,
``v += (g^2 - v)(1 - beta_2)``, ``var -= alpha m / (sqrt(v) + epsilon)``); it has CPU, GPU and
XLA kernels. The tests check both against each other to float32 rounding, step by step.

Only this optimizer object's `update_step` (the method Keras documents for optimizers to
override) is replaced, as `lstm_models.models.loops` replaces a layer's loop: its class, config
and variables stay Keras's own, so a saved model loads and trains on in plain Keras. Keras's own
step stays for what the fused op does not compute as Keras does: AMSGrad, variables other than
float32, and an embedding's sparse gradient. Keras squares a sparse gradient's rows before it adds
those of a repeated token (a token twice in a batch adds 2 g^2 to ``v``, not (2 g)^2 = 4 g^2);
the fused op, given the summed gradient, would compute the textbook moment instead.
Measured side by side in `make bench` (docs/benchmarks.md).
"""

from __future__ import annotations

import functools

import keras


def fuse_adam(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Have a Keras Adam optimizer update its float32 variables with ``ResourceApplyAdam``."""
    if type(optimizer) is keras.optimizers.Adam and not optimizer.amsgrad:
        optimizer.update_step = functools.partial(_fused_update_step, optimizer, optimizer.update_step)
    return optimizer


def _fused_update_step(optimizer, keras_step, gradient, variable, learning_rate):
    """`keras.optimizers.Adam.update_step`'s contract: update ``variable`` in place."""
    import tensorflow as tf

    if variable.dtype != "float32" or isinstance(gradient, tf.IndexedSlices):
        return keras_step(gradient, variable, learning_rate)
    index = optimizer._get_variable_index(variable)
    step = tf.cast(optimizer.iterations + 1, tf.float32)  # as Keras's step: the count before this update, plus one
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    tf.raw_ops.ResourceApplyAdam(
        var=_handle(variable), m=_handle(optimizer._momentums[index]), v=_handle(optimizer._velocities[index]),
        beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
        lr=tf.cast(learning_rate, tf.float32), beta1=beta_1, beta2=beta_2,
        epsilon=tf.constant(optimizer.epsilon, tf.float32),
        grad=tf.convert_to_tensor(gradient, tf.float32),
        use_locking=False,
    )


def _handle(variable):
    """The resource handle of a Keras variable, or of the `tf.Variable` Keras hands `update_step`."""
    import tensorflow as tf

    return variable.handle if isinstance(variable, tf.Variable) else variable.value.handle
