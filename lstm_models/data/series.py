"""Real time series shipped inside the statsmodels wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_models.config import DataSpec
from lstm_models.data.splits import SeriesSplits, time_split
from lstm_models.errors import DataError


def _sunspots():
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    return frame[["SUNACTIVITY"]].to_numpy("float32"), ("SUNACTIVITY",), tuple(
        str(int(y)) for y in frame["YEAR"])


STATSMODELS = {"sunspots": _sunspots}


def load_statsmodels(spec: DataSpec, cache_dir: Path) -> SeriesSplits:
    """A statsmodels series, split by time into train, val and test."""
    values, columns, index = STATSMODELS[spec.get("name")]()
    return make_series(spec.get("name"), values, columns, index, spec)


def make_series(name: str, values: np.ndarray, columns, index, spec: DataSpec) -> SeriesSplits:
    """Split a series by time and check that every part has windows for every lookback."""
    val_start, test_start = time_split(len(values), spec.get("val_fraction"), spec.get("test_fraction"))
    splits = SeriesSplits(name=name, values=values, columns=tuple(columns), val_start=val_start,
                          test_start=test_start, horizon=spec.get("horizon"), index=tuple(index))
    longest = max(int(v) for v in spec.get("lookback").candidates)
    need = longest + spec.get("horizon")
    if val_start < need:
        raise DataError(
            f"{name}: the training split has {val_start} steps, fewer than lookback {longest} + horizon "
            f"{spec.get('horizon')}; lower lookback or val_fraction/test_fraction"
        )
    for part in ("val", "test"):
        lo, hi = splits.bounds(part)
        if hi < lo:
            raise DataError(f"{name}: the {part} split is shorter than horizon {spec.get('horizon')}")
    return splits
