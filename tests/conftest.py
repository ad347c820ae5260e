"""Shared fixtures: tiny data, a seed, spec files and a CLI runner. Every folder is tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "datasets" / "cache"  # read-only download cache shared with `make sweep`

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def seed():
    import keras

    keras.utils.set_random_seed(1234)
    return 1234


def write_spec(folder: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def tiny_series_spec(**tuner) -> dict:
    return {
        "name": "tiny-sunspots",
        "task": "forecasting",
        "dataset": {"kind": "statsmodels", "name": "sunspots", "lookback": [4, 6], "horizon": 1},
        "search": {"units": [4, 8], "depth": {"min": 1, "max": 2}, "batch_size": 32},
        "tuner": {"kind": "random", "max_trials": 2, "max_epochs": 1, "seed": 7, **tuner},
    }


def tiny_sentiment_spec(**tuner) -> dict:
    return {
        "name": "tiny-sentiment",
        "task": "classification",
        "dataset": {"kind": "sentiment", "limit": 400, "max_tokens": 500},
        "search": {"units": [4, 8], "embedding_dim": 8, "depth": {"min": 1, "max": 2}},
        "tuner": {"kind": "random", "max_trials": 2, "max_epochs": 1, "seed": 7, **tuner},
    }


def run_cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m lstm_models`` as a user would, in ``cwd``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(ROOT)}  # this checkout's package, whatever the venv points at
    return subprocess.run([sys.executable, "-m", "lstm_models", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def toy_text_splits():
    """A small separable sentiment set: good words vs bad words."""
    from lstm_models.data.splits import TextSplits

    rng = np.random.default_rng(0)
    good, bad, filler = ["great", "lovely", "superb"], ["awful", "dull", "boring"], ["the", "film", "was", "a"]
    texts, labels = [], []
    for i in range(240):
        label = i % 2
        words = list(rng.choice(filler, 4)) + [rng.choice(good if label else bad)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    texts, labels = np.array(texts, dtype=object), np.array(labels, dtype="int32")
    parts = {"train": slice(0, 160), "val": slice(160, 200), "test": slice(200, 240)}
    return TextSplits(name="toy", texts={p: texts[s] for p, s in parts.items()},
                      labels={p: labels[s] for p, s in parts.items()}, class_names=("negative", "positive"))


def toy_series_splits(n: int = 120, horizon: int = 1):
    from lstm_models.data.splits import SeriesSplits

    t = np.arange(n, dtype="float32")
    values = (50 + 10 * np.sin(t / 4) + t / 10).reshape(-1, 1).astype("float32")
    return SeriesSplits(name="toy", values=values, columns=("y",), val_start=80, test_start=100, horizon=horizon)


def assert_train_alike(model, other, x, y) -> None:
    """``model`` and ``other`` (compiled, with the same weights) compute the same function another
    way: two epochs from the same start give the same losses and weights, within float32 rounding.

    8 Adam steps of 0.01 move the weights 0.07-0.08 at most; float32 sums in another order leave
    the two copies up to 1.3e-4 apart (SimpleRNN on CI), a different computation far more."""
    start = model.get_weights()
    a = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    b = other.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert max(np.abs(w1 - w0).max() for w1, w0 in zip(model.get_weights(), start)) > 3e-2  # it trained
    for w1, w2 in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_allclose(w1, w2, atol=1e-3)
