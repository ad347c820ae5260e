"""Checking one section of a spec against its rules, once, with messages users can act on.

Each key has a `Rule` (type, bounds or choices, searchable or not); a searchable key becomes a
`Param` (a fixed value, a choice, or a range). Every message names where the key is (file and
dotted key), what was expected and what was given, scikit-learn style:
``sweeps/x.yaml: search.units.max must be an int in [1, 1024]. Got 2048 instead.``
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Mapping

from lstm_models.errors import ConfigError

COLUMN = (str, int)  # a Rule type: a column name (with a header) or a 0-based position


@dataclass(frozen=True)
class Param:
    """One searchable hyperparameter: a fixed value, a choice, or a numeric range.

    In YAML a scalar is fixed, a list is a choice and a mapping ``{min, max, step, sampling}``
    is a range (``sampling: log`` for learning rates; with it a step is a factor, docs/spec.md#ranges).
    """

    name: str
    values: tuple = ()
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: str = "linear"

    @property
    def is_range(self) -> bool:
        return self.min is not None

    @property
    def candidates(self) -> tuple:
        """Every value this parameter can take: its values; an integer range's, as Keras Tuner's
        ``Int`` computes them (with ``sampling: log`` a step is a factor: min, min*step, ... up to
        max; without a step any integer); a float range's ends."""
        if not self.is_range:
            return self.values
        if not (isinstance(self.min, int) and isinstance(self.max, int)):
            return (self.min, self.max)
        if self.step is None:
            return tuple(range(self.min, self.max + 1))
        if self.sampling == "log":
            count = int(math.log(self.max / self.min, self.step) + 1e-8) + 1
            return tuple(int(self.min * math.pow(self.step, i)) for i in range(count))
        return tuple(range(self.min, self.max + 1, int(self.step)))

    def to_yaml(self) -> Any:
        if not self.is_range:
            return self.values[0] if len(self.values) == 1 else list(self.values)
        out = {"min": self.min, "max": self.max}
        if self.step is not None:
            out["step"] = self.step
        if self.sampling != "linear":
            out["sampling"] = self.sampling
        return out


@dataclass(frozen=True)
class Rule:
    """How one key is checked: its type, bounds or choices, and whether it may be searched."""

    type: type
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    searchable: bool = False
    required: bool = False
    convert: Any = None  # a function (value, where) -> value that replaces the type check



def check_section(raw: dict, rules: dict[str, Rule], source: str, prefix: str) -> dict[str, Any]:
    reject_unknown(raw, rules, source, prefix)
    out = {}
    for key, rule in rules.items():
        where = f"{source}: {prefix}{key}"
        if key not in raw or raw[key] is None:
            if rule.required:
                raise ConfigError(f"{where} is required")
            value = rule.default
            if rule.searchable and value is not None:
                value = check_param(key, value, rule, where)
            out[key] = value
            continue
        value = raw[key]
        if rule.convert is not None:
            out[key] = rule.convert(value, where)
        else:
            out[key] = check_param(key, value, rule, where) if rule.searchable else check_scalar(value, rule, where)
    return out


def reject_unknown(raw: dict, rules: Mapping[str, Any], source: str, prefix: str) -> None:
    for key in raw:
        if key not in rules:
            raise ConfigError(
                f"{source}: unknown key {prefix}{key}.{hint(str(key), rules)} "
                f"Allowed: {', '.join(rules)}."
            )


def hint(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_param(name: str, value: Any, rule: Rule, where: str) -> Param:
    if isinstance(value, dict):
        return _check_range(name, value, rule, where)
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where} must not be an empty list")
        items = tuple(check_scalar(v, rule, f"{where}[{i}]") for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise ConfigError(f"{where} lists a value twice: {list(value)!r}")
        return Param(name, values=items)
    return Param(name, values=(check_scalar(value, rule, where),))


def _check_range(name: str, value: dict, rule: Rule, where: str) -> Param:
    """A mapping ``{min, max, step, sampling}``. With ``sampling: log`` a step is a factor, as in
    Keras Tuner (min, min*step, min*step**2 ... up to max), so it must be above 1."""
    if rule.type not in (int, float):
        raise ConfigError(f"{where} must be a value or a list of {rule.type.__name__}. Got a range {value!r} instead.")
    unknown = set(value) - {"min", "max", "step", "sampling"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{where}: unknown key {key!r} in a range.{hint(key, ['min', 'max', 'step', 'sampling'])} "
            "Allowed: min, max, step, sampling."
        )
    for end in ("min", "max"):
        if end not in value:
            raise ConfigError(f"{where}.{end} is required in a range")
    lo = check_scalar(value["min"], rule, f"{where}.min")
    hi = check_scalar(value["max"], rule, f"{where}.max")
    if lo > hi:
        raise ConfigError(f"{where}: min ({lo}) must not be above max ({hi})")
    sampling = value.get("sampling", "linear")
    if sampling not in ("linear", "log"):
        raise ConfigError(f"{where}.sampling must be 'linear' or 'log'. Got {sampling!r} instead.")
    if sampling == "log" and lo <= 0:
        raise ConfigError(f"{where}: log sampling needs min above 0. Got {lo} instead.")
    step = value.get("step")
    if step is not None:
        step = check_scalar(step, Rule(rule.type, min=0), f"{where}.step")
        if step <= 0:
            raise ConfigError(f"{where}.step must be above 0. Got {step} instead.")
        if sampling == "log" and step <= 1:
            raise ConfigError(f"{where}.step must be above 1 with sampling 'log' (it multiplies: min, min*step, "
                              f"min*step**2 ... up to max). Got {step} instead.")
    return Param(name, min=lo, max=hi, step=step, sampling=sampling)


def check_scalar(value: Any, rule: Rule, where: str) -> Any:
    expected = {int: "an int", float: "a number", bool: "true or false", str: "a string", dict: "a mapping",
                list: "a list", COLUMN: "a column name or a 0-based column position"}[rule.type]
    ok = isinstance(value, rule.type) and not (rule.type is not bool and isinstance(value, bool))
    if rule.type is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if rule.type is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-3 as a string
            value, ok = float(value), True
        except ValueError:
            pass
    if ok and rule.type is float and not math.isfinite(value):
        ok = False
    if not ok:
        if rule.choices:
            expected = f"one of {', '.join(map(str, rule.choices))}"
        raise ConfigError(f"{where} must be {expected}. Got {value!r} instead.")
    if rule.choices is not None and value not in rule.choices:
        suggestion = hint(str(value), [str(c) for c in rule.choices]) if isinstance(value, str) else ""
        raise ConfigError(
            f"{where} must be one of {', '.join(map(str, rule.choices))}. Got {value!r} instead.{suggestion}"
        )
    lo = rule.min if rule.min is not None else -math.inf
    hi = rule.max if rule.max is not None else math.inf
    if rule.type in (int, float) and not lo <= value <= hi:
        raise ConfigError(f"{where} must be {expected} in [{_fmt(lo)}, {_fmt(hi)}]. Got {value!r} instead.")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 30 * 86400


def parse_duration(value: Any, where: str = "duration") -> float:
    """``90s``, ``30m``, ``2h``, ``1d`` or a number of seconds -> seconds.

    Raises:
        ConfigError: naming ``where`` and the value, for anything else or outside (0, 30 days].
    """
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
        try:
            seconds = float(number) * _UNITS[unit]
        except ValueError:
            seconds = None
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_DURATION:
        raise ConfigError(
            f"{where} must be a duration above 0 and at most 30 days, like 90s, 30m or 2h. Got {value!r} instead."
        )
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form of a duration: 1800 -> ``30m``, 90 -> ``90s``."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and float(seconds / _UNITS[unit]).is_integer():
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"
