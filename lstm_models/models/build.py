"""Recurrent models built from a plain `ModelSpec`: no tuner needed to build or test them.

Text models train on token ids (vectorised once, in the input pipeline, so that training can
be XLA-compiled and batches bucketed by length); `serving_model` puts the `TextVectorization`
layer in front of the trained layers, so the export takes raw strings and returns one
probability per class. Forecasting models take windows of raw values (normalisation inside the
model) and return the forecast in the original units.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import layers

from lstm_models.models.adam import fuse_adam
from lstm_models.models.loops import share_loops
from lstm_models.models.layers import AtLeastOneToken, Changes, LastValue, MaskedMean

CELLS = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}

# Forecasting windows have a fixed length, so their recurrent layers can be unrolled: no loop,
# one graph of `lookback` steps. On CPU (make bench, 2 cores) that trains LSTM and GRU about 2x
# and SimpleRNN about 1.5x faster at windows up to 32-48 steps, for a few seconds more graph
# building per trial, which grows with the window; past 32 steps GRU gains little and at 64 it
# loses. The function computed is the same (tests/test_models.py checks it against the loop).
# On a GPU nothing is unrolled: an unrolled layer cannot use the cuDNN kernel.
# The graph build is paid once per model, the gain per batch: on the sunspots sweep's models
# (make sweep, 15 epochs) unrolling added 3.5-23 s to the first epoch and saved 0.05-0.12 s per
# later one, about 1,000-3,300 batches to break even. So a model is unrolled only when it may
# train UNROLL_MIN_STEPS batches or more (or when nobody says how many: bench.py's throughput).
UNROLL_MAX_STEPS = 32
UNROLL_MIN_STEPS = 4000

# Forecasting models run the loops traced once per process (`lstm_models.models.loops`) in
# batches of up to 16 windows, and Keras's loop in larger ones. The shared loop's written-out
# gradient does more work per element than TensorFlow's while-loop gradient, which pays in large
# batches: at batch 16 it trained every cell at least as fast as Keras's loop (LSTM 1.00-1.17x,
# GRU 1.30-1.48x, SimpleRNN 1.06-1.16x), at batch 64 LSTM 0.66-0.81x and SimpleRNN 0.81-0.89x.
# On the sunspots sweep (batch 16) its trials took 0.84x the time, trace and training both less
# (docs/benchmarks.md).
SHARED_LOOP_MAX_BATCH = 16

# XLA-compiled training on CPU (make bench, 2 cores) runs an epoch 1.1x to 2.9x faster, every
# cell, but compiles once per batch shape for every new model: a 2-epoch sentiment trial took
# 35-45 s with it against 13-16 s without. So it is off unless a spec turns it on
# (tuner.jit_compile: true), for long trials. On a GPU the cuDNN kernels need it off.

# Hyperparameters that exist only for one task or one cell: not searched, not logged elsewhere.
TASK_ONLY = {"bidirectional": "classification", "embedding_dim": "classification", "pooling": "classification",
             "lookback": "forecasting", "residual": "forecasting"}  # in the order they are declared on ``hp``
CELL_ONLY = {"unit_forget_bias": "lstm"}


@dataclass(frozen=True)
class ModelSpec:
    """One concrete network: the sampled point of a search space."""

    task: str
    cell: str = "lstm"
    units: tuple[int, ...] = (64,)
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    batch_size: int = 64
    bidirectional: bool = False
    embedding_dim: int = 64
    pooling: str = "last"
    lookback: int = 16
    unit_forget_bias: bool = True
    residual: bool = False  # forecasting: the network forecasts the change from the last value

    @property
    def depth(self) -> int:
        return len(self.units)

    def params(self) -> dict[str, object]:
        """The active hyperparameters, flat, as they are logged (``units_2`` only at depth 2+)."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            if TASK_ONLY.get(key, self.task) != self.task or CELL_ONLY.get(key, self.cell) != self.cell:
                continue
            if key == "units":
                out["units"] = value[0]
                out.update({f"units_{i + 1}": u for i, u in enumerate(value) if i})
                out["depth"] = self.depth
                continue
            out[key] = value
        return out

    def label(self) -> str:
        """A short readable name, e.g. ``gru 2x64 bi do0.2``."""
        same = len(set(self.units)) == 1
        size = f"{self.depth}x{self.units[0]}" if same else "+".join(map(str, self.units))
        bits = [self.cell, size]
        active = self.params()
        if active.get("bidirectional"):
            bits.append("bi")
        if "lookback" in active:
            bits.append(f"lb{self.lookback}")
        if active.get("residual"):
            bits.append("res")
        bits.append(f"do{self.dropout:g}")
        return " ".join(bits)


@dataclass(frozen=True)
class TextInputs:
    """What a text model needs from the training data: its vocabulary and class count."""

    vocabulary: tuple[str, ...]
    num_classes: int
    # Their graphs skip Grappler, TensorFlow's optimiser of a function's graph on its first call:
    # on the sentences a sweep traced 28-32% less, with epochs as fast (docs/benchmarks.md).
    optimises_graphs = False

    def network(self, spec: ModelSpec, unroll: bool = False) -> keras.Model:
        return _text_model(spec, self)

    def shares_loops(self, spec: ModelSpec) -> bool:
        """Always: with the loops traced once per process (`lstm_models.models.loops`) a sentiment
        sweep traced 31% less and trained 1.17x faster (make bench, peer section)."""
        return True

    def unrolls(self, spec: ModelSpec) -> bool:
        """Token sequences vary in length: never unrolled."""
        return False

    def objective(self) -> tuple[str, list]:
        """The loss and the metrics a text model is compiled with (a metric object: see `build_model`)."""
        return "sparse_categorical_crossentropy", [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def serving(self, model: keras.Model) -> keras.Model:
        """Strings in: the vectoriser, then the trained layers (sharing their weights)."""
        text = keras.Input(shape=(), dtype="string", name="text")
        x = AtLeastOneToken(name="at_least_one_token")(vectorizer(self)(text))
        for layer in model.layers[1:]:  # a chain: embedding, recurrent stack, pooling, head
            x = layer(x)
        return keras.Model(text, x, name=model.name)


@dataclass(frozen=True)
class SeriesInputs:
    """What a forecasting model needs from the training data: shapes and normalisation."""

    num_features: int
    horizon: int
    mean: tuple[float, ...]
    variance: tuple[float, ...]
    step_std: tuple[float, ...] = (1.0,)  # each feature's one-step changes on the training split (residual head)
    optimises_graphs = True  # without Grappler the sunspots sweep traced 19% less but trained 19% slower

    def network(self, spec: ModelSpec, unroll: bool = False) -> keras.Model:
        return _series_model(spec, self, unroll)

    def shares_loops(self, spec: ModelSpec) -> bool:
        """In batches of up to SHARED_LOOP_MAX_BATCH windows (see the note there)."""
        return spec.batch_size <= SHARED_LOOP_MAX_BATCH

    def unrolls(self, spec: ModelSpec) -> bool:
        """A window of at most UNROLL_MAX_STEPS steps, on a CPU, can be unrolled."""
        return spec.lookback <= UNROLL_MAX_STEPS and not _has_gpu()

    def objective(self) -> tuple[str, list]:
        """The loss and the metrics a forecasting model is compiled with."""
        return "mse", [keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")]

    def serving(self, model: keras.Model) -> keras.Model:
        """Windows of raw values in: the model itself (normalisation is inside it)."""
        return model


def build_model(spec: ModelSpec, inputs: TextInputs | SeriesInputs, seed: int | None = None,
                jit_compile: bool = False, train_steps: int | None = None) -> keras.Model:
    """Build and compile the network a `ModelSpec` describes.

    Args:
        spec: the architecture and optimiser settings.
        inputs: vocabulary (text) or feature count and training statistics (series).
        seed: seeds the initialisers, for reproducible trials.
        jit_compile: XLA-compile training (see the note above `ModelSpec`).
        train_steps: at most how many batches it will train on, if known: a window the inputs
            could unroll (``inputs.unrolls``) is unrolled only from UNROLL_MIN_STEPS batches on (the note above `ModelSpec`).

    Returns:
        A compiled `keras.Model`; a text model takes token ids (see `serving_model`).
    """
    if spec.cell not in CELLS:
        raise ValueError(f"unknown cell {spec.cell!r}; expected one of {', '.join(CELLS)}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = inputs.network(spec, inputs.unrolls(spec) and (train_steps is None or train_steps >= UNROLL_MIN_STEPS))
    if inputs.shares_loops(spec) and not jit_compile and not _has_gpu():  # a GPU has cuDNN's loop; XLA compiles its own
        share_loops(model)
    _optimise_graphs(inputs.optimises_graphs or jit_compile or _has_gpu())
    loss, metrics = inputs.objective()
    optimizer = fuse_adam(keras.optimizers.Adam(
        learning_rate=spec.learning_rate, clipnorm=spec.clipnorm if spec.clipnorm > 0 else None
    ))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
    # Keras creates the optimizer's slots (and a metric named by a string) inside the first train
    # step's trace; TensorFlow then traces the step again, as it must when a trace creates
    # variables. Built here, the step is traced once: a trial's first batch took 25-45% less
    # (on the default sentences: a 2-layer bidirectional GRU's 7.6 s -> 5.6 s, a
    # 1-layer LSTM's 3.0 s -> 2.1 s). Its saved state then loads with the weights, too.
    model.optimizer.build(model.trainable_variables)
    return model


def vectorizer(inputs: TextInputs) -> layers.TextVectorization:
    """The text-to-token-ids layer of a text model (vocabulary from the training split)."""
    return layers.TextVectorization(vocabulary=list(inputs.vocabulary), name="vectorize")


def serving_model(model: keras.Model, inputs: TextInputs | SeriesInputs) -> keras.Model:
    """The model that takes raw input: strings for text models (vectorise, then the trained
    layers, sharing their weights), the model itself for forecasting models."""
    return inputs.serving(model)


def _optimise_graphs(on: bool) -> None:
    """Grappler on or off for the process's function calls from now on (TensorFlow has one setting)."""
    import tensorflow as tf

    if tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False) == on:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not on})


@functools.cache
def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _recurrent_stack(x, spec: ModelSpec, last_sequences: bool, unroll: bool = False):
    for i, units in enumerate(spec.units):
        last = i == spec.depth - 1
        kwargs = {"unit_forget_bias": spec.unit_forget_bias} if spec.cell == "lstm" else {}
        layer = CELLS[spec.cell](
            units,
            recurrent_dropout=spec.recurrent_dropout,
            unroll=unroll,
            return_sequences=last_sequences or not last,
            name=f"{spec.cell}_{i + 1}",
            **kwargs,
        )
        if spec.params().get("bidirectional"):  # text models only
            layer = layers.Bidirectional(layer, name=f"bidirectional_{i + 1}")
        x = layer(x)
        if spec.dropout > 0:
            x = layers.Dropout(spec.dropout, name=f"dropout_{i + 1}")(x)
    return x


def _text_model(spec: ModelSpec, inputs: TextInputs) -> keras.Model:
    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    vocabulary_size = len(inputs.vocabulary) + 2  # with the padding and out-of-vocabulary ids
    x = layers.Embedding(vocabulary_size, spec.embedding_dim, mask_zero=True, name="embedding")(tokens)
    x = _recurrent_stack(x, spec, last_sequences=spec.pooling == "mean")
    if spec.pooling == "mean":
        x = MaskedMean(name="mean_pool")(x)
    probs = layers.Dense(inputs.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(tokens, probs, name=f"{spec.cell}_classifier")


def _series_model(spec: ModelSpec, inputs: SeriesInputs, unroll: bool) -> keras.Model:
    window = keras.Input(shape=(spec.lookback, inputs.num_features), name="window")
    mean = np.asarray(inputs.mean, dtype="float32")
    var = np.asarray(inputs.variance, dtype="float32")
    x = layers.Normalization(mean=mean, variance=var, name="normalize")(window)
    if spec.residual:  # the network also sees each step's changes, in units of their own spread
        steps = np.square(np.asarray(inputs.step_std, dtype="float32"))
        changes = layers.Normalization(mean=np.zeros_like(steps), variance=steps, name="normalize_changes")(
            Changes(name="changes")(window))
        x = layers.Concatenate(name="levels_and_changes")([x, changes])
    x = _recurrent_stack(x, spec, last_sequences=False, unroll=unroll)
    x = layers.Dense(inputs.horizon, name="forecast_scaled")(x)
    if not spec.residual:  # back to the target's original units (the target is feature 0)
        forecast = layers.Rescaling(scale=float(np.sqrt(var[0])), offset=float(mean[0]), name="forecast")(x)
        return keras.Model(window, forecast, name=f"{spec.cell}_forecaster")
    # Residual head: the last observed value plus a change, in units of the training split's
    # one-step changes. Like naive and drift, it carries the level past anything training saw.
    change = layers.Rescaling(scale=float(inputs.step_std[0]), name="change")(x)
    forecast = layers.Add(name="forecast")([LastValue(inputs.horizon, name="last_value")(window), change])
    return keras.Model(window, forecast, name=f"{spec.cell}_forecaster")
