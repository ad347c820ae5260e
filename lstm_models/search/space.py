"""The only module that touches keras_tuner's ``hp``: a search space in, a `ModelSpec` out.

Hyperparameters that cannot apply are never created: ``units_3`` lives under a conditional
scope on ``depth``, ``unit_forget_bias`` under one on ``cell``, text-only and series-only
settings exist only for their task.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields

from lstm_models.models.build import TASK_ONLY, ModelSpec
from lstm_models.spec.rules import Param
from lstm_models.spec.sweep import SearchSpace


_CAST = {"bidirectional": bool, "embedding_dim": int, "lookback": int, "residual": bool}
# Hyperband values that number a trial's parent and bracket in the order the oracle was asked
NUMBERING = ("tuner/trial_id", "tuner/bracket")


def trial_seed(sweep_seed: int, values: dict) -> int:
    """A trial's seed (its initial weights, dropout, shuffling), from the sweep's seed and the
    trial's values: its configuration and, for a continued Hyperband trial, its round and epochs,
    but not the numbers of its parent and bracket (`NUMBERING`).

    Seeded by trial id, the same configuration trained differently when it got another number:
    with workers the oracle numbers trials, and Hyperband its brackets, in the order the workers
    ask, and of ten runs of one 2-worker sweep one numbered two trials the other way round and
    exported another model. Seeded by its values, a trial trains the same way whoever asks for it
    first, in one process or with workers, and a lost trial run again trains as it did.
    """
    text = json.dumps({k: v for k, v in values.items() if k not in NUMBERING}, sort_keys=True)
    digest = hashlib.sha256(f"{sweep_seed}|{text}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1)


def set_determinism() -> None:
    """Same spec and seed -> same metrics, in every process that trains (a sweep's, a worker's).
    Seeded CPU runs already repeat bit for bit, and with op determinism on Keras refuses
    jit_compile: GRU would lose its XLA speed-up. So on GPU only."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()


def sample_spec(hp, space: SearchSpace, task: str, lookback: Param | None = None) -> ModelSpec:
    """Declare the space on ``hp`` (first call) and read the trial's values into a `ModelSpec`.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        space: the validated search space.
        task: ``classification`` or ``forecasting``.
        lookback: the dataset's window length (forecasting), itself searchable.

    Returns:
        The `ModelSpec` of this trial.
    """
    cell = str(_declare(hp, "cell", space.cells))
    depth = int(_declare(hp, "depth", space.depth))
    units = [_declare(hp, "units", space.units)]
    depths = [int(d) for d in space.depth.candidates]
    for layer in range(2, max(depths) + 1):
        with hp.conditional_scope("depth", [d for d in depths if d >= layer]):
            value = _declare(hp, f"units_{layer}", space.units)
        if layer <= depth:
            units.append(value)
    values = dict(
        task=task,
        cell=cell,
        units=tuple(int(u) for u in units),
        dropout=float(_declare(hp, "dropout", space.dropout)),
        recurrent_dropout=float(_declare(hp, "recurrent_dropout", space.recurrent_dropout)),
        learning_rate=float(_declare(hp, "learning_rate", space.learning_rate)),
        clipnorm=float(_declare(hp, "clipnorm", space.clipnorm)),
        batch_size=int(_declare(hp, "batch_size", space.batch_size)),
    )
    if "lstm" in space.cells.values:
        with hp.conditional_scope("cell", ["lstm"]):
            forget_bias = _declare(hp, "unit_forget_bias", space.unit_forget_bias)
        if cell == "lstm":
            values["unit_forget_bias"] = bool(forget_bias)
    params = {f.name: getattr(space, f.name) for f in fields(space)} | {"lookback": lookback}
    for key in (k for k, only in TASK_ONLY.items() if only == task and params[k] is not None):
        value = _declare(hp, key, params[key])
        values[key] = _CAST[key](value) if key in _CAST else value
    return ModelSpec(**values)


def _declare(hp, name: str, param: Param):
    """One hyperparameter on ``hp``: Fixed, Choice, Int or Float, by the shape of the Param."""
    if not param.is_range:
        if len(param.values) == 1:
            return hp.Fixed(name, param.values[0])
        return hp.Choice(name, list(param.values))
    if isinstance(param.min, int) and isinstance(param.max, int):
        return hp.Int(name, param.min, param.max, step=param.step, sampling=param.sampling)
    return hp.Float(name, float(param.min), float(param.max), step=param.step, sampling=param.sampling)
