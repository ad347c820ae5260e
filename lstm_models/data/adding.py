"""The adding problem (Hochreiter & Schmidhuber 1997), in the setting of Arjovsky et al. (2016).

Each sequence has two channels: ``value``, uniform in [0, 1], and ``marker``, 1 at exactly two
steps (one drawn uniformly in the first half, one in the second) and 0 elsewhere. The target is
the sum of the two marked values. Always predicting 1 gives a mean squared error of
Var(U1 + U2) = 2/12 ~ 0.167: a model that beats this has carried a value across up to
``length`` steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_models.data.options import DatasetKind, DataSpec, Rule
from lstm_models.data.splits import PARTS, SequenceSplits

COLUMNS = ("value", "marker")
BASELINE_MSE = 1.0 / 6.0  # predicting 1 every time


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences ``(n, length, 2)`` and their targets ``(n, 1)``."""
    values = rng.uniform(0.0, 1.0, size=(n, length)).astype("float32")
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length), dtype="float32")
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), target.reshape(-1, 1).astype("float32")


def load_adding(spec: DataSpec, cache_dir: Path) -> SequenceSplits:
    """Generate the three parts from ``seed`` (each part from its own stream, so sizes are independent)."""
    length = spec.get("length")
    x, y = {}, {}
    for index, part in enumerate(PARTS):
        rng = np.random.default_rng([spec.get("seed"), index])
        x[part], y[part] = adding_problem(spec.get(f"{part}_size"), length, rng)
    return SequenceSplits(name=f"adding-{length}", x=x, y=y, columns=COLUMNS)


OPTIONS = {
    "length": Rule(int, default=100, min=2, max=100_000),
    "train_size": Rule(int, default=10_000, min=1, max=10_000_000),
    "val_size": Rule(int, default=1_000, min=1, max=10_000_000),
    "test_size": Rule(int, default=1_000, min=1, max=10_000_000),
    "seed": Rule(int, default=1234, min=0, max=2**31 - 1),
}
# Whole sequences: the model's window is the sequence, not a searched lookback.
KINDS = {"adding": DatasetKind(load_adding, OPTIONS, "forecasting", lookback_from="length")}
