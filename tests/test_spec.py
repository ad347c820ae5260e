import pytest

from lstm_models.spec.sweep import Param, load_sweep, parse_sweep
from lstm_models.errors import ConfigError

from conftest import ROOT, tiny_series_spec, write_spec


def _error(raw, source="s.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_sweep(raw, source=source)
    return str(info.value)


def test_defaults_fill_everything_but_name_task_dataset():
    spec = parse_sweep({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}})
    assert spec.objective == "val_accuracy" and spec.direction == "max"
    assert spec.tuner.kind == "hyperband" and spec.tuner.max_trials == 10 and spec.tuner.seed == 42
    assert spec.search.cells == Param("cells", values=("lstm", "gru", "rnn"))
    assert spec.search.learning_rate.sampling == "log"
    assert spec.dataset.get("max_tokens") == 10_000
    forecast = parse_sweep({"name": "y", "task": "forecasting", "dataset": {"kind": "statsmodels"}})
    assert forecast.objective == "val_rmse" and forecast.direction == "min"
    assert forecast.dataset.get("lookback").values == (8, 16, 32)


def test_shipped_specs_load():
    for name in ("sentiment", "sunspots", "imdb", "co2", "elnino"):
        spec = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
        assert spec.name == name


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "task": "classification", "datset": {}},
     "s.yaml: unknown key datset. Did you mean 'dataset'?"),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "search": {"unitz": 3}},
     "s.yaml: unknown key search.unitz. Did you mean 'units'?"),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "search": {"units": {"min": 8, "max": 2048}}},
     "s.yaml: search.units.max must be an int in [1, 1024]. Got 2048 instead."),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "search": {"units": {"min": 64, "max": 8}}},
     "s.yaml: search.units: min (64) must not be above max (8)"),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "search": {"cells": ["lstm", "gur"]}},
     "s.yaml: search.cells[1] must be one of lstm, gru, rnn. Got 'gur' instead. Did you mean 'gru'?"),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "tuner": {"kind": "grid"}},
     "s.yaml: tuner.kind must be one of random, bayesian, hyperband. Got 'grid' instead."),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "tuner": {"max_trials": "ten"}},
     "s.yaml: tuner.max_trials must be an int. Got 'ten' instead."),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "tuner": {"workers": -1}},
     "s.yaml: tuner.workers must be an int in [0, 64]. Got -1 instead."),
    ({"name": "x", "task": "classification", "dataset": {"kind": "imbd"}},
     "s.yaml: dataset.kind must be one of adding, imdb, sentiment, series_csv, statsmodels, text_csv, text_dir. "
     "Got 'imbd' instead. Did you mean 'imdb'?"),
    ({"name": "x", "task": "forecasting", "dataset": {"kind": "sentiment"}},
     "s.yaml: dataset.kind 'sentiment' is a classification dataset but task is 'forecasting'"),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "objective": "val_rmse"},
     "s.yaml: objective must be one of val_accuracy, val_loss for task classification. Got 'val_rmse' instead."),
    ({"task": "classification", "dataset": {"kind": "sentiment"}}, "s.yaml: name is required"),
    ({"name": "a/b", "task": "classification", "dataset": {"kind": "sentiment"}},
     "s.yaml: name must start with a letter or digit and hold only letters, digits, '-', '_' or '.' (it names the "
     "sweep's state and export folders). Got 'a/b' instead."),
    ({"name": "..", "task": "classification", "dataset": {"kind": "sentiment"}},  # --fresh emptied the parent folder
     "s.yaml: name must start with a letter or digit and hold only letters, digits, '-', '_' or '.' (it names the "
     "sweep's state and export folders). Got '..' instead."),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"}, "search": {"bidirectional": "yes"}},
     "s.yaml: search.bidirectional must be true or false. Got 'yes' instead."),
    ({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"},
      "search": {"depth": {"min": 1, "max": 3, "step": 1, "sampling": "log"}}},
     "s.yaml: search.depth.step must be above 1 with sampling 'log' (it multiplies: min, min*step, min*step**2 "
     "... up to max). Got 1 instead."),
])
def test_bad_specs_name_key_and_value(raw, message):
    assert _error(raw).startswith(message)


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntask: [classification\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: YAML syntax error at line 3"):
        load_sweep(path)


def test_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match="no-such.yaml: no such sweep spec"):
        load_sweep(tmp_path / "no-such.yaml")


def test_overrides_are_validated(tmp_path):
    spec = load_sweep(write_spec(tmp_path, tiny_series_spec()))
    assert spec.with_overrides(max_trials=5, kind="bayesian").tuner.max_trials == 5
    with pytest.raises(ConfigError, match=r"command line: max_trials must be an int in \[1, 10000\]. Got 0 instead."):
        spec.with_overrides(max_trials=0)


def test_ranges_choices_and_fixed_values():
    spec = parse_sweep({"name": "x", "task": "classification", "dataset": {"kind": "sentiment"},
                        "search": {"units": 32, "dropout": [0.0, 0.25], "learning_rate": {"min": "1e-4", "max": 0.1, "sampling": "log"}}})
    assert spec.search.units == Param("units", values=(32,))
    assert spec.search.dropout.values == (0.0, 0.25)
    assert spec.search.learning_rate == Param("learning_rate", min=1e-4, max=0.1, sampling="log")
    assert spec.to_dict()["search"]["units"] == 32


def test_integer_ranges_may_be_sampled_on_a_log_scale():
    spec = parse_sweep({"name": "x", "task": "forecasting", "dataset": {"kind": "statsmodels"},
                        "search": {"depth": {"min": 1, "max": 3, "sampling": "log"},
                                   "units": {"min": 4, "max": 64, "step": 2, "sampling": "log"}}})
    assert spec.search.depth == Param("depth", min=1, max=3, sampling="log")
    assert spec.to_dict()["search"]["units"] == {"min": 4, "max": 64, "step": 2, "sampling": "log"}


def test_time_budget_in_the_spec_and_on_the_command_line(tmp_path):
    from lstm_models.spec.rules import format_duration, parse_duration

    assert [parse_duration(v) for v in ("90s", "30m", "2h", "1d", "45", 12)] == [90, 1800, 7200, 86400, 45, 12]
    assert [format_duration(s) for s in (90, 1800, 7200, 150, 0.5)] == ["90s", "30m", "2h", "150s", "0.5s"]
    spec = load_sweep(write_spec(tmp_path, tiny_series_spec(time_budget="30m")))
    assert spec.tuner.time_budget == 1800 and spec.to_dict()["tuner"]["time_budget"] == 1800
    assert spec.with_overrides(time_budget="2h").tuner.time_budget == 7200
    assert load_sweep(write_spec(tmp_path, tiny_series_spec())).tuner.time_budget is None
    for bad in ("soon", "-5m", "0s", "31d", True):
        with pytest.raises(ConfigError, match=r"tuner.time_budget must be a duration above 0 and at most 30 days"):
            parse_sweep({**tiny_series_spec(time_budget=bad)}, source="s.yaml")
