"""The search itself: every cell type gets its share of trials, with any tuner."""

from lstm_models.config import parse_sweep
from lstm_models.sweep import run_sweep
from lstm_models.tracking import NullTracker

from conftest import toy_series_splits


def _spec(kind, trials, balance=True):
    return parse_sweep({
        "name": f"bal-{kind}", "task": "forecasting",
        "dataset": {"kind": "statsmodels", "lookback": 4},
        "search": {"cells": ["lstm", "gru", "rnn"], "units": [2, 4, 8], "depth": 1, "batch_size": 64},
        "tuner": {"kind": kind, "max_trials": trials, "max_epochs": 1 if kind != "hyperband" else 3,
                  "seed": 42, "balance_cells": balance},
        "early_stopping": {"patience": 0},
    })


def test_hyperband_gives_every_cell_a_turn(tmp_path, seed):
    result = run_sweep(_spec("hyperband", 4), toy_series_splits(), NullTracker(), tmp_path, log=lambda _: None)
    assert len(result.trials) == 4
    assert set(result.best_per_cell) == {"lstm", "gru", "rnn"}
    for t in result.trials:  # the cell-only setting follows the cell it was given
        assert ("unit_forget_bias" in t.spec.params()) == (t.spec.cell == "lstm")


def test_rotation_is_exact_for_random_search(tmp_path, seed):
    result = run_sweep(_spec("random", 3), toy_series_splits(), NullTracker(), tmp_path, log=lambda _: None)
    assert [t.spec.cell for t in result.trials] == ["lstm", "gru", "rnn"]
