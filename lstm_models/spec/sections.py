"""The rules of every section of a sweep spec: types, bounds, choices, defaults.

`lstm_models.spec.sweep` checks a YAML spec against them (with `lstm_models.spec.rules`) and
builds its frozen dataclasses; the ``dataset:`` block has its loader's own rules
(`lstm_models.data`).
"""

from __future__ import annotations

from typing import Any

from lstm_models.spec.rules import Rule, parse_duration

TASKS = ("classification", "forecasting")
CELL_NAMES = ("lstm", "gru", "rnn")
TUNERS = ("random", "bayesian", "hyperband")


# Search space of the models, per key. A task-specific default follows below.
SEARCH_RULES: dict[str, Rule] = {
    "cells": Rule(str, choices=CELL_NAMES, searchable=True),
    "units": Rule(int, min=1, max=1024, searchable=True),
    "depth": Rule(int, min=1, max=3, searchable=True),
    "dropout": Rule(float, min=0.0, max=0.9, searchable=True),
    "recurrent_dropout": Rule(float, min=0.0, max=0.9, searchable=True),
    "learning_rate": Rule(float, min=1e-6, max=1.0, searchable=True),
    "bidirectional": Rule(bool, searchable=True),
    "batch_size": Rule(int, min=1, max=8192, searchable=True),
    "embedding_dim": Rule(int, min=2, max=1024, searchable=True),
    "pooling": Rule(str, choices=("last", "mean"), searchable=True),
    "clipnorm": Rule(float, min=0.0, max=100.0, searchable=True),
    "unit_forget_bias": Rule(bool, searchable=True),
    "residual": Rule(bool, searchable=True),
}

DEFAULT_SEARCH: dict[str, dict[str, Any]] = {
    "classification": {
        "cells": ["lstm", "gru", "rnn"],
        "units": [32, 64, 128],
        "depth": {"min": 1, "max": 2},
        "dropout": {"min": 0.0, "max": 0.5, "step": 0.1},
        "recurrent_dropout": 0.0,
        "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"},
        "bidirectional": [False, True],
        "batch_size": 64,
        "embedding_dim": [32, 64, 128],
        "pooling": ["last", "mean"],
        "clipnorm": 1.0,
        "unit_forget_bias": True,
        "residual": False,
    },
    "forecasting": {
        "cells": ["lstm", "gru", "rnn"],
        "units": [16, 32, 64],
        "depth": {"min": 1, "max": 2},
        "dropout": {"min": 0.0, "max": 0.3, "step": 0.1},
        "recurrent_dropout": 0.0,
        "learning_rate": {"min": 1e-3, "max": 3e-2, "sampling": "log"},
        "bidirectional": False,
        "batch_size": 16,
        "embedding_dim": 32,
        "pooling": "last",
        "clipnorm": 1.0,
        "unit_forget_bias": True,
        "residual": False,
    },
}

TUNER_RULES: dict[str, Rule] = {
    "kind": Rule(str, default="hyperband", choices=TUNERS),
    "max_trials": Rule(int, default=10, min=1, max=10_000),
    "max_epochs": Rule(int, default=10, min=1, max=10_000),
    "seed": Rule(int, default=42, min=0, max=2**31 - 1),
    "factor": Rule(int, default=3, min=2, max=10),
    "balance_cells": Rule(bool, default=True),
    "jit_compile": Rule(bool, default=False),
    "time_budget": Rule(float, default=None, convert=parse_duration),
    "worker_timeout": Rule(float, default=120.0, convert=parse_duration),
    "workers": Rule(int, default=0, min=0, max=64),
}

EARLY_STOPPING_RULES: dict[str, Rule] = {
    "patience": Rule(int, default=3, min=0, max=1000),
    "min_delta": Rule(float, default=0.0, min=0.0, max=1e9),
}

TRACKING_RULES: dict[str, Rule] = {"system_metrics": Rule(bool, default=True)}

MATCH = ("none", "params")
VERDICT_RULES: dict[str, Rule] = {
    "seeds": Rule(int, default=0, min=0, max=100),
    "match": Rule(str, default="none", choices=MATCH),
}

PRUNERS = ("median", "none")
PRUNING_RULES: dict[str, Rule] = {
    "kind": Rule(str, default="none", choices=PRUNERS),
    "warmup_trials": Rule(int, default=4, min=1, max=10_000),
    "warmup_epochs": Rule(int, default=1, min=0, max=10_000),
}

TOP_RULES: dict[str, Rule] = {
    "name": Rule(str, required=True),
    "task": Rule(str, required=True, choices=TASKS),
    "description": Rule(str, default=""),
    "dataset": Rule(dict, required=True),
    "search": Rule(dict, default={}),
    "tuner": Rule(dict, default={}),
    "early_stopping": Rule(dict, default={}),
    "tracking": Rule(dict, default={}),
    "verdict": Rule(dict, default={}),
    "pruning": Rule(dict, default={}),
    "objective": Rule(str, default=None),
}

DEFAULT_OBJECTIVE = {"classification": "val_accuracy", "forecasting": "val_rmse"}
OBJECTIVES = {
    "classification": ("val_accuracy", "val_loss"),
    "forecasting": ("val_rmse", "val_mae", "val_loss"),
}
