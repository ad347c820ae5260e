"""The layers our networks add to Keras's, registered so that ``safe_mode`` loading knows them:
a forecaster's step changes and last value (its residual head), a text model's padding mask."""

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
class PaddingMask(layers.Layer):
    """``[embedded, ids]`` in, ``embedded`` out, masked where ``ids`` is 0 (padding): what
    ``Embedding(mask_zero=True)`` would mask, for an embedding trained without a mask."""

    def call(self, inputs):
        return inputs[0]

    def compute_mask(self, inputs, mask=None):
        import keras.ops as ops

        return ops.not_equal(inputs[1], 0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]
