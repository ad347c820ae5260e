"""What a loader is: its options' rules, the task it serves, and the checks across its keys.

Each loader module declares its dataset kinds (`DatasetKind`) with their option rules beside
the loader; the registry in `lstm_models.data` gathers them. The option groups that several
loaders share (split fractions, CSV reading, series windows) are defined here once.
"""

from __future__ import annotations

import json

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from lstm_models.errors import ConfigError
from lstm_models.spec.rules import COLUMN, Param, Rule

SPLIT_RULES: dict[str, Rule] = {
    "val_fraction": Rule(float, default=0.1, min=0.01, max=0.5),
    "test_fraction": Rule(float, default=0.2, min=0.01, max=0.5),
    "split_seed": Rule(int, default=1234, min=0, max=2**31 - 1),
}
SERIES_RULES: dict[str, Rule] = {
    "lookback": Rule(int, default=[8, 16, 32], min=1, max=100_000, searchable=True),
    "horizon": Rule(int, default=1, min=1, max=10_000),
    "val_fraction": Rule(float, default=0.15, min=0.01, max=0.5),
    "test_fraction": Rule(float, default=0.15, min=0.01, max=0.5),
    "season": Rule(int, default=0, min=0, max=100_000),  # 0: from the time column's frequency
    "fill": Rule(str, default="interpolate", choices=("interpolate", "drop", "error")),
}
TEXT_RULES: dict[str, Rule] = {
    **SPLIT_RULES,
    "max_tokens": Rule(int, default=10_000, min=10, max=1_000_000),
    "limit": Rule(int, default=0, min=0, max=100_000_000),
}
# A column: its name, or its 0-based position when the file has no header row.
CSV_RULES: dict[str, Rule] = {
    "path": Rule(str, required=True),
    "sep": Rule(str, default=None),  # default from the extension: .tsv tab, otherwise comma
    "header": Rule(bool, default=True),
}
COLUMN_KEYS = ("text_column", "label_column", "target", "time_column")


@dataclass(frozen=True)
class DataSpec:
    """Which dataset to load and its options (checked against the loader's own rules)."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    derived: tuple[str, ...] = ()  # options the registry added (``lookback`` from ``length``)

    def get(self, key: str) -> Any:
        return self.options[key]

    def given(self) -> dict[str, Any]:
        """The options as a spec states them (without the derived ones)."""
        return {k: v for k, v in self.options.items() if k not in self.derived}

    def source(self) -> str:
        """Where the data comes from, as the spec says it: the kind and its options."""
        given = self.given()
        return self.kind + (" " + json.dumps(given, sort_keys=True, default=str) if given else "")


@dataclass(frozen=True)
class DatasetKind:
    """One ``dataset.kind``: its loader, its options and the task its splits serve.

    Args:
        load: ``(DataSpec, cache_dir) -> splits``.
        options: the rules of its ``dataset:`` keys.
        task: ``classification`` or ``forecasting``.
        check: ``(options, source) -> None``, what one key alone cannot say (raises `ConfigError`).
        lookback_from: whole sequences: the key whose value is the model's window.
        about: for a kind that reads the user's own data, what the user gives.
    """

    load: Callable[[DataSpec, Path], Any]
    options: Mapping[str, Rule]
    task: str
    check: Callable[[dict, str], None] | None = None
    lookback_from: str | None = None
    about: str = ""  # a kind for the user's own data: what to give (``lstm-models datasets``)

    def resolve(self, kind: str, checked: dict[str, Any], source: str) -> DataSpec:
        """The `DataSpec` of options already checked key by key; cross-key checks run here."""
        check_columns(checked, source)
        if self.check is not None:
            self.check(checked, source)
        derived: tuple[str, ...] = ()
        if self.lookback_from:
            checked["lookback"] = Param("lookback", values=(checked[self.lookback_from],))
            derived = ("lookback",)
        return DataSpec(kind=kind, options=checked, derived=derived)


def check_columns(options: dict[str, Any], source: str) -> None:
    """Separators, and column keys against ``header`` (a name with one, a position without)."""
    if options.get("sep") is not None and len(options["sep"]) != 1:
        raise ConfigError(f"{source}: dataset.sep must be one character (\"\\t\" for tab). "
                          f"Got {options['sep']!r} instead.")
    want = str if options.get("header", True) else int
    for key in COLUMN_KEYS:
        value = options.get(key)
        if value is None:
            continue
        if not isinstance(value, want):
            raise ConfigError(f"{source}: dataset.{key} must be {column_kind(want)} when header is "
                              f"{str(options.get('header', True)).lower()}. Got {value!r} instead.")
        if want is int and value < 0:
            raise ConfigError(f"{source}: dataset.{key} must be a 0-based column position (0 or more). "
                              f"Got {value!r} instead.")


def column_kind(want: type) -> str:
    return "a column name" if want is str else "a 0-based column position"


def check_list(value: list, want: type, what: str, source: str, key: str) -> None:
    """Every item of a list option is a ``want`` (never a bool)."""
    for i, item in enumerate(value):
        if not isinstance(item, want) or isinstance(item, bool):
            raise ConfigError(f"{source}: {key}[{i}] must be {what}. Got {item!r} instead.")


__all__ = ["COLUMN", "CSV_RULES", "DataSpec", "DatasetKind", "Rule", "SERIES_RULES", "SPLIT_RULES", "TEXT_RULES",
           "check_columns", "check_list", "column_kind"]
