"""The package's own Keras layers, registered so that ``safe_mode`` loading knows them.

`AtLeastOneToken` guards a text model's serving input, and `MaskedMean` is its mean pooling.
`Changes` and `LastValue` are the
residual forecasting head's. A residual network forecasts the change from the window's last
value: it reads each step's change beside the levels (`Changes`) and adds its forecast change to
that last value (`LastValue`). Like naive and drift, it carries the level past anything training
saw.
"""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="lstm_models")
class Changes(layers.Layer):
    """Each step's change from the step before, per feature (zero at the first step): what a
    residual network reads beside the levels, so that small seasonal changes stay visible."""

    def call(self, window):
        import keras.ops as ops

        return ops.concatenate([ops.zeros_like(window[:, :1]), window[:, 1:] - window[:, :-1]], axis=1)


@keras.saving.register_keras_serializable(package="lstm_models")
class LastValue(layers.Layer):
    """The window's last value of the target (feature 0), repeated ``horizon`` times: the naive
    forecast the residual head adds its change to. Registered, so ``safe_mode`` loading knows it."""

    def __init__(self, horizon: int, **kwargs):
        super().__init__(**kwargs)
        self.horizon = int(horizon)

    def call(self, window):
        import keras.ops as ops

        return ops.repeat(window[:, -1:, 0], self.horizon, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon}


@keras.saving.register_keras_serializable(package="lstm_models")
class AtLeastOneToken(layers.Layer):
    """Token ids at least one step wide. A request whose texts are all empty vectorises to no step
    at all, which no recurrent loop accepts (Keras's own fails too); one padding id, masked, gives
    each text what an empty text gets beside longer ones: the layers' initial state."""

    def call(self, ids):
        import keras.ops as ops

        return ops.pad(ids, [[0, 0], [0, ops.maximum(1 - ops.shape(ids)[1], 0)]])

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="lstm_models")
class MaskedMean(layers.Layer):
    """The mean over each sequence's unmasked steps, and zeros where no step is unmasked: a text
    of punctuation only vectorises to padding alone, where Keras's GlobalAveragePooling1D divides
    0 by 0 and its NaN stops the trial (or is the served answer). Other rows get its arithmetic."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, steps, mask=None):
        import keras.ops as ops

        if mask is None:
            return ops.mean(steps, axis=1)
        mask = ops.expand_dims(ops.cast(mask, "bool"), 2)
        count = ops.sum(ops.cast(mask, steps.dtype), axis=1)
        return ops.sum(ops.where(mask, steps, 0), axis=1) / ops.maximum(count, 1.0)

    def compute_mask(self, steps, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
