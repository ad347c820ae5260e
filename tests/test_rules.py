"""The rules engine on its own: one key, one section, one message naming where, what and what was given."""

import math

import pytest

from lstm_models.errors import ConfigError
from lstm_models.spec.rules import (Param, Rule, check_param, check_scalar, check_section, format_duration,
                                    parse_duration)

RULES = {"units": Rule(int, default=8, min=1, max=64, searchable=True), "name": Rule(str, required=True),
         "kind": Rule(str, default="a", choices=("a", "b"))}


def _error(call, *args) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args)
    return str(info.value)


def test_a_section_fills_defaults_and_rejects_unknown_keys_with_a_hint():
    out = check_section({"name": "x"}, RULES, "s.yaml", "search.")
    assert out == {"units": Param("units", values=(8,)), "name": "x", "kind": "a"}
    assert _error(check_section, {"name": "x", "unitz": 4}, RULES, "s.yaml", "search.") == (
        "s.yaml: unknown key search.unitz. Did you mean 'units'? Allowed: units, name, kind.")
    assert _error(check_section, {}, RULES, "s.yaml", "") == "s.yaml: name is required"


def test_scalars_are_typed_bounded_and_named():
    assert check_scalar(3, Rule(float), "w") == 3.0 and check_scalar("1e-3", Rule(float), "w") == 0.001
    assert _error(check_scalar, True, Rule(int), "s.yaml: depth") == "s.yaml: depth must be an int. Got True instead."
    assert _error(check_scalar, math.nan, Rule(float), "w") == "w must be a number. Got nan instead."
    assert _error(check_scalar, 2048, Rule(int, min=1, max=1024), "w") == "w must be an int in [1, 1024]. Got 2048 instead."
    assert _error(check_scalar, "gur", Rule(str, choices=("lstm", "gru")), "w") == (
        "w must be one of lstm, gru. Got 'gur' instead. Did you mean 'gru'?")


def test_searchable_values_are_fixed_choices_or_ranges():
    rule = Rule(float, min=0.0, max=1.0, searchable=True)
    assert check_param("p", 0.5, rule, "w") == Param("p", values=(0.5,))
    assert check_param("p", [0.1, 0.2], rule, "w").candidates == (0.1, 0.2)
    ranged = check_param("p", {"min": 0.001, "max": 0.1, "sampling": "log"}, rule, "w")
    assert (ranged.is_range, ranged.candidates, ranged.to_yaml()) == (True, (0.001, 0.1),
                                                                      {"min": 0.001, "max": 0.1, "sampling": "log"})
    assert _error(check_param, "p", [0.1, 0.1], rule, "w") == "w lists a value twice: [0.1, 0.1]"
    assert _error(check_param, "p", [], rule, "w") == "w must not be an empty list"
    assert _error(check_param, "p", {"min": 0.5, "max": 0.1}, rule, "w") == "w: min (0.5) must not be above max (0.1)"
    assert _error(check_param, "p", {"min": 0.0, "max": 0.1, "sampling": "log"}, rule, "w") == (
        "w: log sampling needs min above 0. Got 0.0 instead.")
    assert _error(check_param, "p", {"min": 0.1, "max": 0.2, "stp": 1}, rule, "w") == (
        "w: unknown key 'stp' in a range. Did you mean 'step'? Allowed: min, max, step, sampling.")
    assert _error(check_param, "p", {"min": 1}, Rule(int, searchable=True), "w") == "w.max is required in a range"
    assert _error(check_param, "p", {"min": 1, "max": 2}, Rule(bool, searchable=True), "w") == (
        "w must be a value or a list of bool. Got a range {'min': 1, 'max': 2} instead.")


def test_a_log_range_takes_a_step_only_as_a_factor_above_1():
    rule = Rule(int, min=1, max=1024, searchable=True)
    assert check_param("units", {"min": 8, "max": 512, "sampling": "log"}, rule, "w") == Param(
        "units", min=8, max=512, sampling="log")  # no step: any integer, log-uniform
    assert check_param("units", {"min": 8, "max": 512, "step": 2, "sampling": "log"}, rule, "w").step == 2
    assert _error(check_param, "depth", {"min": 1, "max": 3, "step": 1, "sampling": "log"}, rule, "s.yaml: search.depth") == (
        "s.yaml: search.depth.step must be above 1 with sampling 'log' (it multiplies: min, min*step, "
        "min*step**2 ... up to max). Got 1 instead.")
    rate = Rule(float, min=1e-6, max=1.0, searchable=True)
    assert _error(check_param, "lr", {"min": 1e-4, "max": 0.1, "step": 0.5, "sampling": "log"}, rate, "w").startswith(
        "w.step must be above 1 with sampling 'log' (it multiplies: ")


def test_durations_parse_and_print_in_their_shortest_form():
    assert [parse_duration(v) for v in ("90s", "30m", "2h", "1d", "45", 12)] == [90, 1800, 7200, 86400, 45, 12]
    assert [format_duration(s) for s in (90, 1800, 7200, 86400, 150, 0.5)] == ["90s", "30m", "2h", "1d", "150s", "0.5s"]
    for bad in ("soon", "-5m", "0s", "31d", True, math.inf):
        assert _error(parse_duration, bad, "--time-budget").startswith(
            "--time-budget must be a duration above 0 and at most 30 days, like 90s, 30m or 2h. Got ")
