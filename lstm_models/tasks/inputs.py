"""What an export takes as input, checked before TensorFlow loads: a text, or a window of values."""

from __future__ import annotations

import numpy as np

from lstm_models.errors import ConfigError

# The flag that gives an export's gate inspector its input, per task.
INPUT_FLAGS = {"classification": "--text", "forecasting": "--values"}


def check_input(meta: dict, text: str | None, values: str | None):
    """Check a gate-inspector input against the export's task; return the window for ``--values``
    (None for text: a text becomes the model's input once the model is loaded, `text_input`)."""
    task = meta.get("task")
    given = "--text" if text is not None else "--values"
    if INPUT_FLAGS.get(task) != given:
        if given == "--text":
            raise ConfigError(f"--text: this export is a {task} model; give --values "
                              f"({meta.get('lookback')} comma-separated values)")
        raise ConfigError(f"--values: this export is a {task} model; give --text")
    return values_input(meta, values) if values is not None else None


def values_input(meta: dict, raw: str) -> tuple[np.ndarray, list[str]]:
    """``v1,v2,...`` (or ``a:b,...`` with several channels) as one window, and its step labels."""
    lookback, width = int(meta["lookback"]), len(meta.get("columns", [0]))
    steps = [s.strip() for s in raw.split(",") if s.strip()]
    if len(steps) != lookback:
        raise ConfigError(f"--values: the model reads windows of {lookback} steps; got {len(steps)} values")
    rows = []
    for n, step in enumerate(steps, start=1):
        try:
            row = [float(v) for v in step.split(":")]
        except ValueError:
            raise ConfigError(f"--values: step {n} ({step!r}) is not a number") from None
        if not all(abs(v) <= float(np.finfo(np.float32).max) for v in row):  # NaN, inf, 1e400, 1e39 (beyond float32)
            raise ConfigError(f"--values: step {n} ({step!r}) is not a finite number")
        if len(row) != width:
            raise ConfigError(f"--values: step {n} ({step!r}) has {len(row)} channel(s); the model reads "
                              f"{width} ({', '.join(meta['columns'])}), written a:b")
        rows.append(row)
    return np.array([rows], dtype="float32"), steps
