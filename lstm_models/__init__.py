"""lstm-models: Keras Tuner sweeps over LSTM, GRU and SimpleRNN models, tracked in MLflow.

Names are imported on first use, so that ``lstm-models --help`` and a bad spec answer at once,
without loading TensorFlow.
"""

import importlib

_EXPORTS = {
    "CELLS": "lstm_models.models.build",
    "ModelSpec": "lstm_models.models.build",
    "build_model": "lstm_models.models.build",
    "SweepSpec": "lstm_models.spec.sweep",
    "load_sweep": "lstm_models.spec.sweep",
    "ConfigError": "lstm_models.errors",
    "DataError": "lstm_models.errors",
    "TrialFailed": "lstm_models.errors",
    "run_sweep": "lstm_models.search.run",
    "SweepPaths": "lstm_models.search.run",
    "Hooks": "lstm_models.search.run",
    "load_dataset": "lstm_models.data",
    "task_for": "lstm_models.tasks",
    "run_reference": "lstm_models.models.cells",
    "run_bidirectional": "lstm_models.models.cells",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lstm_models' has no attribute {name!r}")
