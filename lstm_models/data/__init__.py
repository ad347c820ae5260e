"""The dataset registry: every ``dataset.kind``, its loader and options, and `load_dataset`.

A new kind is one `DatasetKind` in its loader's module (its ``KINDS``), listed here once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from lstm_models.data import adding, sentiment, series, text
from lstm_models.data.options import DatasetKind, DataSpec
from lstm_models.data.splits import SequenceSplits, SeriesSplits, TextSplits
from lstm_models.errors import ConfigError
from lstm_models.spec.rules import check_section, hint

Splits = Union[TextSplits, SeriesSplits, SequenceSplits]

KINDS: dict[str, DatasetKind] = {**sentiment.KINDS, **text.KINDS, **series.KINDS, **adding.KINDS}


def parse_dataset(raw: dict[str, Any], task: str, source: str) -> DataSpec:
    """Check a spec's ``dataset:`` block against its kind's rules.

    Raises:
        ConfigError: naming the file, the key and the value.
    """
    kind = raw.get("kind")
    if kind is None:
        raise ConfigError(f"{source}: dataset.kind is required (one of {', '.join(sorted(KINDS))})")
    if kind not in KINDS:
        raise ConfigError(f"{source}: dataset.kind must be one of {', '.join(sorted(KINDS))}. "
                          f"Got {kind!r} instead.{hint(str(kind), KINDS)}")
    entry = KINDS[kind]
    if entry.task != task:
        raise ConfigError(f"{source}: dataset.kind {kind!r} is a {entry.task} dataset but task is {task!r}")
    options = {k: v for k, v in raw.items() if k != "kind"}
    return entry.resolve(kind, check_section(options, dict(entry.options), source, "dataset."), source)


def load_dataset(spec: DataSpec, cache_dir: Path) -> Splits:
    """Load the dataset a spec names; downloads go to ``cache_dir``."""
    return KINDS[spec.kind].load(spec, Path(cache_dir))


__all__ = ["KINDS", "DataSpec", "Splits", "SequenceSplits", "SeriesSplits", "TextSplits", "load_dataset",
           "parse_dataset"]
