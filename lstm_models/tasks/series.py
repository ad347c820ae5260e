"""The forecasting tasks: a series split by time, or independent sequences (the adding problem).

Windows are cut once per lookback; normalisation statistics come from the training split only.
The baselines are forecasting's simple methods (`lstm_models.tasks.forecast`) on the model's
test windows; independent sequences have no past to repeat, so their one baseline is the mean.
"""

from __future__ import annotations

import math

import numpy as np

from lstm_models.data.splits import PARTS, SequenceSplits, SeriesSplits
from lstm_models.models.build import ModelSpec, SeriesInputs
from lstm_models.tasks.baselines import Baselines
from lstm_models.tasks.feed import feed
from lstm_models.tasks.forecast import (arima, drift, ets, forecast_scores, mase_scale, naive, seasonal_naive,
                                        theta)


class SeriesTask:
    """Forecasting one series: what a sweep needs from `SeriesSplits`."""

    name = "forecasting"
    test_metric = "rmse"
    unit = "windows"

    def __init__(self, data: SeriesSplits | SequenceSplits):
        self.data = data

    def test_dependence(self) -> int:
        """Consecutive test windows share ``horizon - 1`` targets, and a series' errors are
        autocorrelated: the verdict resamples them in blocks (`lstm_models.tasks.paired.block_length`)."""
        return self.data.horizon

    def make_inputs(self, max_tokens: int | None = None) -> SeriesInputs:
        """Feature count, horizon and normalisation statistics, from the training split only."""
        mean, var = self.data.train_stats()
        return SeriesInputs(num_features=self.data.values.shape[1], horizon=self.data.horizon,
                            mean=tuple(float(m) for m in mean), variance=tuple(float(v) for v in var),
                            step_std=tuple(float(s) for s in self.data.step_std()))

    def batches(self, inputs: SeriesInputs, bucketing: bool = True) -> "WindowBatches":
        return WindowBatches(self.data)

    def baselines(self, model, max_tokens: int | None, seed: int, lookback: int | None = None) -> Baselines:
        return forecasting_baselines(self.data, model, lookback)

    def test_losses(self, model, lookback: int | None = None) -> np.ndarray:
        """A model's squared error on each test window, averaged over the horizon."""
        x, y = self.data.windows("test", lookback)
        return np.mean((model_forecast(model, x, y.shape) - y.astype("float64")) ** 2, axis=1)

    def export_meta(self, spec: ModelSpec) -> tuple[dict, np.ndarray]:
        """What the export records about its input and output, and a sample of raw windows."""
        sample = self.data.windows("test", spec.lookback)[0][:8]
        return {"task": self.name, "lookback": spec.lookback, "horizon": self.data.horizon,
                "columns": list(self.data.columns), "input": "a batch of windows (batch, lookback, features)"}, sample

    def examples(self, model, meta: dict, n: int) -> list[tuple[np.ndarray, list[str]]]:
        """The first ``n`` test windows, with each step's values as its label."""
        windows = self.data.windows("test", int(meta["lookback"]))[0][:n]
        return [(w[None], [":".join(f"{v:.3g}" for v in step) for step in w]) for w in windows]

    def tags(self) -> dict[str, str]:
        """What the parent run records about the data: length, gaps, season, dates."""
        data = self.data
        first, last = data.date_range()
        return {"series_length": str(len(data.values)), "gaps_filled": str(data.gaps_filled),
                "fill": data.fill, "season": str(data.season), "date_range": f"{first}..{last}"}

    def describe(self) -> list[str]:
        """Length, gaps, season and each split's steps and dates."""
        data, sizes = self.data, self.data.sizes()
        first, last = data.date_range()
        gaps = ("rows with a gap dropped" if data.fill == "drop"
                else "gaps filled (interpolated in the training split, then from the last value)")
        lines = [f"{data.name}: forecasting, {len(data.values):,} steps"
                 + (f" from {first} to {last}" if first else "")
                 + f", target {data.columns[0]!r}"
                 + (f", features {', '.join(repr(c) for c in data.columns[1:])}" if len(data.columns) > 1 else ""),
                 f"  {data.gaps_filled} {gaps}; season {data.season}; horizon {data.horizon}"]
        for part in PARTS:
            lo, hi = data.bounds(part)
            end = hi + data.horizon - 1
            when = f"  ({data.index[lo]}..{data.index[end]})" if data.index else ""
            lines.append(f"  {part:<5} {sizes[part]:>8,} target starts, steps {lo}..{end}{when}")
        return lines


class SequenceTask(SeriesTask):
    """Independent sequences of one length (the adding problem): the window is the sequence."""

    def test_dependence(self) -> int:
        return 0

    def baselines(self, model, max_tokens: int | None, seed: int, lookback: int | None = None) -> Baselines:
        return sequence_baselines(self.data, model)

    def tags(self) -> dict[str, str]:
        return {"sequence_length": str(self.data.length), "test_size": str(self.data.sizes()["test"])}

    def describe(self) -> list[str]:
        data, sizes = self.data, self.data.sizes()
        lines = [f"{data.name}: forecasting, {sum(sizes.values()):,} independent sequences of {data.length} steps, "
                 f"columns {', '.join(repr(c) for c in data.columns)}; horizon {data.horizon}"]
        return lines + [f"  {part:<5} {sizes[part]:>8,} sequences" for part in PARTS]


class WindowBatches:
    """The ``tf.data`` pipeline of one part for one model spec: windows of its lookback."""

    def __init__(self, data: SeriesSplits | SequenceSplits):
        self.data = data
        self._windows: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, part: str, spec: ModelSpec, shuffle_seed: int | None = None):
        import tensorflow as tf

        key = (part, spec.lookback)
        if key not in self._windows:
            self._windows[key] = self.data.windows(part, spec.lookback)
        x, y = self._windows[key]
        # tf.data, not numpy-cut batches as for text: dense windows shuffle cheaply element by element
        # (42 ms an epoch for 2,400), and a generator costs 0.8 ms a batch against 0.3 ms.
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
        return feed(ds.batch(spec.batch_size))


def sequence_baselines(data: SequenceSplits, model) -> Baselines:
    """Independent sequences (the adding problem) have no past to repeat: the one baseline is the
    training targets' mean (for the adding problem about 1, test MSE about 0.167). No MASE."""
    x, y_test = data.windows("test", data.length)
    mean = data.y["train"].astype("float64").mean(axis=0)
    forecasts = {"mean": np.broadcast_to(mean, y_test.shape)}
    if model is not None:
        forecasts = {"best": model_forecast(model, x, y_test.shape),
                     **forecasts}
    notes = {"mean": f"always the training mean {float(mean.mean()):.4g}"}
    return _scored(y_test, forecasts, math.nan, notes, data.horizon)


def model_forecast(model, x: np.ndarray, shape: tuple) -> np.ndarray:
    """A model's forecasts for windows ``x``, as float64 of ``shape``. One eager call: `predict`
    would trace the (unrolled) network once per batch shape, seconds each."""
    return np.asarray(model(x, training=False), dtype="float64").reshape(shape)


def _scored(y_test: np.ndarray, forecasts: dict, scale: float, notes: dict, horizon: int) -> Baselines:
    """Every method's scores, and its squared error per window (the paired test's losses)."""
    scores = {m: forecast_scores(y_test, f, scale) for m, f in forecasts.items()}
    losses = {m: np.mean((np.asarray(f, "float64") - y_test) ** 2, axis=1) for m, f in forecasts.items()}
    return Baselines(task="forecasting", metric="rmse", scores=scores, notes=notes, windows=len(y_test),
                     losses=losses, horizon=horizon)


def forecasting_baselines(data: SeriesSplits, model, lookback: int) -> Baselines:
    """Naive, seasonal naive, drift, ARIMA/ETS and Theta, and the model, on the model's test windows."""
    x, y_test = data.windows("test", lookback)
    starts = data.starts("test", lookback)
    y = data.values[:, 0].astype("float64")
    h, m = data.horizon, max(int(data.season), 1)
    scale = mase_scale(y[:data.val_start], m)
    forecasts = {"naive": naive(y, starts, h), "seasonal_naive": seasonal_naive(y, starts, h, m),
                 "drift": drift(y, starts, h)}
    if m > 1:
        forecasts["ets"], note = ets(y, data.val_start, starts, h, m)
        notes = {"ets": note}
    else:
        forecasts["arima"], note = arima(y, data.val_start, starts, h)
        notes = {"arima": note}
    notes["seasonal_naive"] = f"season {m}"
    forecasts["theta"], notes["theta"] = theta(y, starts, h, m)
    if model is not None:
        forecasts = {"best": model_forecast(model, x, y_test.shape),
                     **forecasts}
    return _scored(y_test.astype("float64"), forecasts, scale, notes, h)
