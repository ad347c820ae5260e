"""Forecasting's simple methods and its metrics, on exactly the test windows the models are scored on.

Naive (last value), seasonal naive, drift, ARIMA (no season) or ETS (with a season) from
statsmodels, chosen by AIC on the training split, and Theta (statsmodels); each forecasts the ``horizon`` steps of every
test window from the values before it. Metrics: RMSE, MAE, sMAPE (in percent, the M4
definition) and MASE (scaled by the in-sample seasonal naive error of the training split).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np


# ---- forecasting: the methods, each (values, starts, horizon) -> forecasts (n, horizon) ----

def naive(y: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """The last value before each window, repeated."""
    return np.repeat(y[starts - 1][:, None], horizon, axis=1)


def seasonal_naive(y: np.ndarray, starts: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The value one season before each step (from the last season before the window)."""
    steps = np.arange(horizon)
    return y[starts[:, None] - season + steps[None, :] % season]


def drift(y: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """The last value plus k times the mean step from the first value to it."""
    last = y[starts - 1]
    slope = (last - y[0]) / np.maximum(starts - 1, 1)
    return last[:, None] + slope[:, None] * np.arange(1, horizon + 1)[None, :]


def arima(y: np.ndarray, train_end: int, starts: np.ndarray, horizon: int) -> tuple[np.ndarray, str]:
    """ARIMA(p, d, q) fitted on ``y[:train_end]``: d from a KPSS test (as auto.arima does), then
    p, q <= 2 by AIC; its parameters stay fixed and each window is forecast from the values before it."""
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.stattools import kpss

    train = y[:train_end]
    d, how = 0, "d 0: a constant training split"  # which has no KPSS statistic (0 / 0)
    if np.ptp(train) > 0:
        with warnings.catch_warnings(record=True):  # p-values outside KPSS's table are only clipped
            d, how = int(kpss(train, regression="c", nlags="auto")[1] < 0.05), "d by KPSS"
    best, best_aic, order = None, math.inf, None
    for p, q in itertools.product(range(3), range(3)):
        with warnings.catch_warnings(record=True):  # convergence notes of weak orders: AIC decides
            try:
                fit = ARIMA(train, order=(p, d, q), trend="c" if d == 0 else "n").fit()
            except (ValueError, np.linalg.LinAlgError):
                continue
        if math.isfinite(fit.aic) and fit.aic < best_aic:
            best, best_aic, order = fit, fit.aic, (p, d, q)
    with warnings.catch_warnings(record=True):
        out = np.stack([np.asarray(best.apply(y[:t]).forecast(horizon)) for t in starts])
    return out, f"ARIMA{order} by AIC {best_aic:.1f} ({how})"


def ets(y: np.ndarray, train_end: int, starts: np.ndarray, horizon: int, season: int) -> tuple[np.ndarray, str]:
    """Additive Holt-Winters: no trend, trend or damped trend, chosen by AIC on ``y[:train_end]``;
    its parameters and initial states are fixed there and each window is forecast from the values
    before it."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    train = y[:train_end]
    init = "heuristic" if train_end >= max(2 * season, 10 + 2 * (season // 2)) else "estimated"
    best, best_aic, shape = None, math.inf, None
    for trend, damped in ((None, False), ("add", False), ("add", True)):
        with warnings.catch_warnings(record=True):
            fit = ExponentialSmoothing(train, trend=trend, damped_trend=damped, seasonal="add",
                                       seasonal_periods=season, initialization_method=init).fit()
        if math.isfinite(fit.aic) and fit.aic < best_aic:
            best, best_aic, shape = fit, fit.aic, (trend, damped)
    trend, damped = shape
    p = best.params
    fixed = {k: p[k] for k in ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")
             if p.get(k) is not None and not (isinstance(p[k], float) and math.isnan(p[k]))}
    out = []
    for t in starts:
        with warnings.catch_warnings(record=True):
            model = ExponentialSmoothing(
                y[:t], trend=trend, damped_trend=damped, seasonal="add", seasonal_periods=season,
                initialization_method="known", initial_level=p["initial_level"],
                initial_trend=p["initial_trend"] if trend else None, initial_seasonal=p["initial_seasons"])
            out.append(np.asarray(model.fit(optimized=False, **fixed).forecast(horizon)))
    name = {(None, False): "no trend", ("add", False): "additive trend", ("add", True): "damped trend"}[shape]
    return np.stack(out), f"ETS(A,{'Ad' if damped else 'A' if trend else 'N'},A) season {season}, {name}, by AIC {best_aic:.1f}"


def theta(y: np.ndarray, starts: np.ndarray, horizon: int, season: int) -> tuple[np.ndarray, str]:
    """The Theta method (statsmodels' ThetaModel: simple exponential smoothing plus half the linear
    trend's slope), deseasonalised where the series has a season (multiplicatively when every
    value is positive, else additively); fitted on the values before each window (a constant
    history forecasts its constant)."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    kind = "multiplicative" if np.all(y > 0) else "additive"
    out = []
    for t in starts:
        if np.ptp(y[:t]) == 0:  # statsmodels fits a slope to a constant: 5.0 went on as 11.25
            out.append(np.repeat(y[t - 1], horizon))
            continue
        with warnings.catch_warnings(record=True):
            model = ThetaModel(y[:t], period=season if season > 1 else None, deseasonalize=season > 1, method=kind)
            out.append(np.asarray(model.fit().forecast(horizon)))
    return np.stack(out), f"Theta, {f'{kind} season {season}' if season > 1 else 'no season'}"


# ---- forecasting: the metrics ----

def rmse(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - f) ** 2)))


def mae(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(np.abs(y - f)))


def smape(y: np.ndarray, f: np.ndarray) -> float:
    """Symmetric MAPE in percent, 200 |y - f| / (|y| + |f|); a step with y = f = 0 counts 0."""
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(2.0 * np.abs(y - f), denom, out=np.zeros_like(denom, dtype="float64"), where=denom > 0)
    return float(100.0 * np.mean(ratio))


def mase_scale(train: np.ndarray, season: int) -> float:
    """The mean absolute error of the seasonal naive forecast inside the training split."""
    return float(np.mean(np.abs(train[season:] - train[:-season])))


def forecast_scores(y: np.ndarray, f: np.ndarray, scale: float) -> dict[str, float]:
    """RMSE, MAE, sMAPE and MASE of forecasts ``f`` for targets ``y``, both (windows, horizon)."""
    y, f = np.asarray(y, dtype="float64"), np.asarray(f, dtype="float64")
    error = mae(y, f)
    return {"rmse": rmse(y, f), "mae": error, "smape": smape(y, f),
            "mase": error / scale if scale > 0 else math.nan}
