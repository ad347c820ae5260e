"""Adam, as `keras.optimizers.Adam` computes it, in one TensorFlow op per dense variable.

Keras writes Adam's update as about twenty small ops per variable (casts, the bias corrections,
then the moments and the step, each a separate kernel over the whole variable). TensorFlow's
``ResourceApplyAdam`` computes the same update in one kernel:

    m <- m + (g - m)(1 - beta_1);  v <- v + (g^2 - v)(1 - beta_2)
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

An embedding's gradient is sparse, one row per token of the batch, and there Keras 3 differs from
that formula: it squares each row before the rows of a repeated token are summed, so a frequent
token's second moment is the sum of its squares, not the square of its sum. Fusing it the
paper's way trained an embedding's epoch 13% faster (10,000 x 128) but, on the short sentences
of `make bench-peer` at four seeds in one process, left the best model's test accuracy 0 to 1.7
points lower (0.7433-0.7600 against 0.7383-0.7600). So a sparse gradient gets Keras's own update,
op by op; every other variable gets the one op. Fewer ops make every trial's first trace shorter
(see docs/benchmarks.md for the measured sweeps). The moments are built as Adam builds them, in
the same order, so weights saved with either optimizer load into the other.
"""

from __future__ import annotations

from types import MappingProxyType

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="lstm_models")
class FusedAdam(keras.optimizers.Optimizer):
    """Adam without AMSGrad, one fused op per variable with a dense gradient (TensorFlow backend).

    Args:
        learning_rate: the step size (a float or a schedule).
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: added to the second moment's root, as Keras's Adam adds it.
        **kwargs: what every Keras optimizer takes (``clipnorm``, ``name``, ...).
    """

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 name: str = "adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        momentums, velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        # A read-only view, not a dict: TensorFlow tracks a dict set on the optimizer as part of
        # what a SavedModel saves, and cannot save one keyed by variables.
        self.moments = MappingProxyType({_key(w): (m, v) for w, m, v in zip(var_list, momentums, velocities)})

    def update_step(self, gradient, variable, learning_rate):
        m, v = self.moments[_key(variable)]
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.constant(self.beta_1, dtype), tf.constant(self.beta_2, dtype)
        lr = tf.cast(learning_rate, dtype)
        if isinstance(gradient, tf.IndexedSlices):  # an embedding's: Keras's update, op by op (see the module)
            alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
            self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
            self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
            self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)))
            return
        tf.raw_ops.ResourceApplyAdam(
            var=_resource(variable).handle, m=_resource(m).handle, v=_resource(v).handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=lr,
            beta1=beta_1, beta2=beta_2, epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


def _resource(variable) -> tf.Variable:
    """The TensorFlow variable behind a Keras one (Keras hands `update_step` either)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _key(variable):
    return _resource(variable).ref()
