"""Time series: the ones shipped inside the statsmodels wheel, or a CSV/TSV file of the user's.

Both go through `frame_to_series`: missing values are filled (``fill``), the target becomes
column 0, the season comes from the spec or from the time step, and the series is split by time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lstm_models.data.files import MISSING, column_label, find_column, read_table
from lstm_models.data.options import (COLUMN, CSV_RULES, SERIES_RULES, DatasetKind, DataSpec, Rule, check_list,
                                        column_kind)
from lstm_models.data.splits import VARIANCE_FLOOR, SeriesSplits, time_split
from lstm_models.errors import ConfigError, DataError


def _sunspots():
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    return frame[["SUNACTIVITY"]], [str(int(y)) for y in frame["YEAR"]], "SUNACTIVITY", 1


def _co2():
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data  # weekly, 59 weeks missing
    return frame[["co2"]], [d.strftime("%Y-%m-%d") for d in frame.index], "co2", 52


def _nile():
    from statsmodels.datasets import nile

    frame = nile.load_pandas().data
    return frame[["volume"]], [str(int(y)) for y in frame["year"]], "volume", 1


def _elnino():
    from statsmodels.datasets import elnino

    wide = elnino.load_pandas().data  # one row per year, one column per month
    months = [c for c in wide.columns if c != "YEAR"]
    values = wide[months].to_numpy("float64").reshape(-1)
    index = [f"{int(y)}-{m:02d}" for y in wide["YEAR"] for m in range(1, 13)]
    return pd.DataFrame({"temperature": values}), index, "temperature", 12


MACRODATA_TARGET = "realgdp"
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the models compute in float32


def _macrodata():
    from statsmodels.datasets import macrodata

    frame = macrodata.load_pandas().data
    index = [f"{int(y)}Q{int(q)}" for y, q in zip(frame["year"], frame["quarter"])]
    return frame.drop(columns=["year", "quarter"]), index, MACRODATA_TARGET, 4


# name -> () -> (frame of numbers, time labels, default target, steps per season)
STATSMODELS = {"sunspots": _sunspots, "co2": _co2, "nile": _nile, "elnino": _elnino, "macrodata": _macrodata}


def load_statsmodels(spec: DataSpec, cache_dir: Path) -> SeriesSplits:
    """A statsmodels series, split by time into train, val and test."""
    name = spec.get("name")
    frame, index, default_target, season = STATSMODELS[name]()
    target = spec.get("target") or default_target
    for key, col in [("target", target)] + [("features", f) for f in spec.get("features")]:
        if col not in frame.columns:
            raise DataError(f"statsmodels {name}: no column {col!r} (dataset.{key}); it has "
                            f"{', '.join(frame.columns)}")
    where = [f"row {r}" for r in range(1, len(frame) + 1)]
    return frame_to_series(name, frame.astype("float64"), target, spec.get("features"), index, where,
                           spec.get("season") or season, spec)


def load_series_csv(spec: DataSpec, cache_dir: Path) -> SeriesSplits:
    """A CSV or TSV file: a target column, optional feature columns and an optional time column.

    A blank line between rows is a step whose cells are all empty (gaps); without a time column
    the steps' labels are the lines of the file.
    """
    path, header = Path(spec.get("path")), spec.get("header")
    frame = read_table(path, spec.get("sep"), header, keep_blank=True)
    target = find_column(frame, path, spec.get("target"), "target", header)
    features = [find_column(frame, path, f, "features", header) for f in spec.get("features")]
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    rows = frame.index.to_numpy()  # lines of the file
    numbers = pd.DataFrame({col: _numbers(frame[col], path, col, rows) for col in [target, *features]})
    season, index = 1, [str(r) for r in rows]
    time_col = spec.get("time_column")
    if time_col is not None:
        time_col = find_column(frame, path, time_col, "time_column", header)
        times = _times(frame[time_col], path, time_col, rows)
        order = np.argsort(times.to_numpy(), kind="stable")
        times, numbers, rows = times.iloc[order].reset_index(drop=True), numbers.iloc[order], rows[order]
        numbers = numbers.reset_index(drop=True)
        repeated = times.duplicated()
        if repeated.any():
            first = int(np.flatnonzero(repeated.to_numpy())[0])
            raise DataError(f"{path}: line {rows[first]}, column {column_label(time_col)}: time "
                            f"{times.iloc[first]} appears twice")
        season = season_of(times)
        fmt = "%Y-%m-%d" if (times == times.dt.normalize()).all() else "%Y-%m-%d %H:%M:%S"
        index = [t.strftime(fmt) for t in times]
    return frame_to_series(str(path), numbers, target, features, index, [f"line {r}" for r in rows],
                           spec.get("season") or season, spec)


def _numbers(cells: pd.Series, path: Path, column, rows) -> pd.Series:
    cells = cells.reset_index(drop=True)
    stripped = cells.str.strip()
    missing = stripped.isin(MISSING)
    values = pd.to_numeric(stripped.where(~missing), errors="coerce")
    bad = values.isna() & ~missing
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: line {rows[i]}, column {column_label(column)}: {cells.iloc[i]!r} is not a number")
    infinite = ~np.isfinite(values.fillna(0.0))
    if infinite.any():
        i = int(np.flatnonzero(infinite.to_numpy())[0])
        raise DataError(f"{path}: line {rows[i]}, column {column_label(column)}: {cells.iloc[i]!r} is not finite")
    huge = values.fillna(0.0).abs() > FLOAT32_MAX  # inf in float32, in which the models compute
    if huge.any():
        i = int(np.flatnonzero(huge.to_numpy())[0])
        raise DataError(f"{path}: line {rows[i]}, column {column_label(column)}: {cells.iloc[i]!r} is beyond float32's "
                        f"range (about {FLOAT32_MAX:.1e}), in which the models compute; rescale the column")
    return values.astype("float64")


def _times(cells: pd.Series, path: Path, column, rows) -> pd.Series:
    """The dates of the time column; when their UTC offsets differ, all converted to UTC."""
    cells = cells.reset_index(drop=True)
    stripped = cells.str.strip()
    try:
        times = pd.to_datetime(stripped, errors="coerce", format="mixed")
    except ValueError:  # pandas: "Mixed timezones detected", offsets that differ or some dates without one
        _check_offsets(cells, path, column, rows)
        times = pd.to_datetime(stripped, errors="coerce", format="mixed", utc=True)
    bad = times.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: line {rows[i]}, column {column_label(column)}: {cells.iloc[i]!r} is not a date")
    return times


def _check_offsets(cells: pd.Series, path: Path, column, rows) -> None:
    """Dates with a UTC offset and dates without one are not on one clock: the first that differs is named."""
    aware = []
    for cell in cells:
        try:
            stamp = pd.Timestamp(cell.strip())
        except ValueError:  # not a date: reported with the others
            stamp = pd.NaT
        aware.append(None if stamp is pd.NaT else stamp.tzinfo is not None)
    known = [i for i, a in enumerate(aware) if a is not None]
    first = known[0] if known else 0
    for i in known:
        if aware[i] != aware[first]:
            raise DataError(f"{path}: line {rows[i]}, column {column_label(column)}: {cells.iloc[i]!r} has "
                            f"{'a' if aware[i] else 'no'} UTC offset, unlike {cells.iloc[first]!r} on line "
                            f"{rows[first]}; give every date a UTC offset (dates are then compared in UTC) or none")


def season_of(times: pd.Series) -> int:
    """Steps per season from the usual time step: hourly 24, daily 7, weekly 52, monthly 12, quarterly 4."""
    if len(times) < 3:
        return 1
    step = pd.Series(np.diff(times.to_numpy())).mode().iloc[0] / pd.Timedelta(days=1)
    for low, high, season in ((1 / 24 * 0.99, 1 / 24 * 1.01, 24), (0.99, 1.01, 7), (6.99, 7.01, 52),
                              (28, 31, 12), (89, 92, 4)):
        if low <= step <= high:
            return season
    return 1


def frame_to_series(name: str, frame: pd.DataFrame, target, features, index, where, season: int,
                    spec: DataSpec) -> SeriesSplits:
    """Fill the gaps (``fill``), put the target first, and split by time.

    Args:
        name: the file (or statsmodels name) that messages start with.
        frame: one float column per used column, NaN where a value is missing.
        target, features: column names (or positions) in ``frame``.
        index: one time label per row, in time order.
        where: where each frame row comes from, for messages ("line 21" of a file).
        season: steps per season (1: none).
        spec: the dataset options (fill, lookback, horizon, split fractions).
    """
    columns = [target, *features]
    frame = frame[columns]
    for col in columns:
        if frame[col].isna().all():
            raise DataError(f"{name}: column {column_label(col)} has no values (all {len(frame)} rows missing)")
    fill = spec.get("fill")
    missing = frame.isna()
    gaps = int(missing.to_numpy().sum())
    if gaps and fill == "error":
        i, j = np.argwhere(missing.to_numpy())[0]
        raise DataError(f"{name}: {where[i]}, column {column_label(columns[j])}: missing value "
                        "(fill: error; use fill: interpolate or drop)")
    if gaps and fill == "drop":
        keep = ~missing.any(axis=1).to_numpy()
        gaps = int((~keep).sum())
        frame, index = frame[keep], [label for label, k in zip(index, keep) if k]
    elif gaps:  # in the training split linearly; after it from the past only (no window sees a later value)
        val_start = time_split(len(frame), spec.get("val_fraction"), spec.get("test_fraction"))[0]
        train = frame.iloc[:val_start].interpolate(method="linear", limit_direction="both")
        frame = pd.concat([train, frame.iloc[val_start:]]).ffill()
    values = frame.to_numpy("float32")
    return make_series(name, values, [str(c) for c in columns], index, spec, season=season, gaps=gaps,
                       column=column_label(target))


def make_series(name: str, values: np.ndarray, columns, index, spec: DataSpec, season: int = 1,
                gaps: int = 0, column: str = "") -> SeriesSplits:
    """Split a series by time and check that every part has windows for every lookback."""
    val_start, test_start = time_split(len(values), spec.get("val_fraction"), spec.get("test_fraction"))
    splits = SeriesSplits(name=name, values=values, columns=tuple(columns), val_start=val_start,
                          test_start=test_start, horizon=spec.get("horizon"), index=tuple(index),
                          season=int(season), gaps_filled=gaps, fill=spec.options.get("fill", "interpolate"))
    longest = max(int(v) for v in spec.get("lookback").candidates)
    need = longest + spec.get("horizon")
    if val_start < need:
        where = f" (column {column}: {len(values)} rows" if column else f" ({len(values)} rows"
        raise DataError(
            f"{name}: the training split has {val_start} steps, fewer than lookback {longest} + horizon "
            f"{spec.get('horizon')}{where}, val_fraction {spec.get('val_fraction')}, test_fraction "
            f"{spec.get('test_fraction')}); lower lookback or val_fraction/test_fraction"
        )
    for part in ("val", "test"):
        lo, hi = splits.bounds(part)
        if hi < lo:
            raise DataError(f"{name}: the {part} split is shorter than horizon {spec.get('horizon')}")
    if season > 1 and val_start <= season:
        raise DataError(f"{name}: the training split has {val_start} steps, not more than one season of {season}; "
                        "set dataset.season or use a longer series")
    _check_spread(name, columns, np.asarray(values[:val_start], dtype="float64"))
    return splits


def _check_spread(name: str, columns, train: np.ndarray) -> None:
    """The models normalise each column by its training split's spread, in float32: a variance
    that overflows made every loss NaN. One under the floor (`VARIANCE_FLOOR`, a constant column's)
    is taken as the floor: a column whose every value lies within that floor of zero (around 1e-30)
    then reached the model as a constant. A constant column is fine (its variance in float64 may
    be a rounding error above zero); so is a column of large values that barely varies."""
    for i, (var, largest) in enumerate(zip(train.var(axis=0), np.abs(train).max(axis=0))):
        if var > FLOAT32_MAX:
            raise DataError(f"{name}: column {column_label(columns[i])} spreads by about {np.sqrt(var):.1e} in the "
                            "training split, too far for float32 training (its variance overflows); rescale the column")
        if 0 < largest < np.sqrt(VARIANCE_FLOOR) and np.ptp(train[:, i]) > 0:
            raise DataError(f"{name}: column {column_label(columns[i])} spreads by only about {np.sqrt(var):.1e} in "
                            f"the training split, too little for float32 training (the models normalise by at least "
                            f"{np.sqrt(VARIANCE_FLOOR):.0e}); rescale the column")


def _check_features(options: dict, source: str, target=None) -> None:
    """Feature columns: names (or positions without header), each once, never the target."""
    want = str if options.get("header", True) else int
    features = options["features"]
    check_list(features, want, column_kind(want), source, "dataset.features")
    target = options["target"] if target is None else target
    for i, col in enumerate(features):
        if col == target:
            raise ConfigError(f"{source}: dataset.features must not list the target {col!r} (the target is always "
                              f"an input). Got {features!r} instead.")
        if col in features[:i]:
            raise ConfigError(f"{source}: dataset.features must list each column once ({col!r} is listed twice). "
                              f"Got {features!r} instead.")


def _check_statsmodels(options: dict, source: str) -> None:
    if options["name"] != "macrodata":
        for key in ("target", "features"):
            if options[key]:
                raise ConfigError(f"{source}: dataset.{key} applies to name: macrodata only "
                                  f"({options['name']} is a single series). Got {options[key]!r}.")
    _check_features(options, source, target=options["target"] or MACRODATA_TARGET)


KINDS = {
    "series_csv": DatasetKind(load_series_csv, {
        **CSV_RULES, "target": Rule(COLUMN, required=True), "time_column": Rule(COLUMN, default=None),
        "features": Rule(list, default=[]), **SERIES_RULES}, "forecasting", check=_check_features,
        about="your CSV/TSV of a series (path, target, time_column, features)"),
    "statsmodels": DatasetKind(load_statsmodels, {
        "name": Rule(str, default="sunspots", choices=tuple(STATSMODELS)),
        "target": Rule(str, default=None), "features": Rule(list, default=[]), **SERIES_RULES},
        "forecasting", check=_check_statsmodels),
}
