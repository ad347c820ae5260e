"""lstm-models: Keras Tuner sweeps over LSTM, GRU and SimpleRNN models, tracked in MLflow.

Names are imported on first use, so that ``lstm-models --help`` and a bad spec answer at once,
without loading TensorFlow.
"""

import importlib

_EXPORTS = {
    "CELLS": "lstm_models.models",
    "ModelSpec": "lstm_models.models",
    "build_model": "lstm_models.models",
    "SweepSpec": "lstm_models.config",
    "load_sweep": "lstm_models.config",
    "ConfigError": "lstm_models.errors",
    "DataError": "lstm_models.errors",
    "TrialFailed": "lstm_models.errors",
    "run_sweep": "lstm_models.sweep",
    "load_dataset": "lstm_models.data",
    "run_reference": "lstm_models.cells",
    "run_bidirectional": "lstm_models.cells",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lstm_models' has no attribute {name!r}")
