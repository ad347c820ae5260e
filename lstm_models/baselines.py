"""Baselines beside every sweep, scored on exactly the test windows the models are scored on.

Forecasting: naive (last value), seasonal naive, drift, and ARIMA (no season) or ETS (with a
season) from statsmodels, chosen by AIC on the training split; each forecasts the ``horizon``
steps of every test window from the values before it. Metrics: RMSE, MAE, sMAPE (in percent,
the M4 definition) and MASE (scaled by the in-sample seasonal naive error of the training
split). Classification: the majority class of the training split, and a bag-of-words logistic
regression (TextVectorization ``tf_idf`` and one softmax Dense layer) trained like the models.

The verdict compares the exported model (``best``) with the best baseline on the sweep's test
metric (RMSE or accuracy).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from lstm_models.data.splits import SequenceSplits, SeriesSplits, TextSplits

FORECAST_METRICS = ("rmse", "mae", "smape", "mase")
BOW_EPOCHS = 60
BOW_LEARNING_RATE = 1e-4  # 1e-2 overshoots on tf-idf inputs: 0.737 instead of 0.783 test accuracy
BOW_BATCH = 64


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
    with warnings.catch_warnings(record=True):  # p-values outside KPSS's table are only clipped
        d = int(kpss(train, regression="c", nlags="auto")[1] < 0.05)
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
    return out, f"ARIMA{order} by AIC {best_aic:.1f} (d by KPSS)"


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


# ---- the report of one sweep ----

@dataclass
class Baselines:
    """Every method's test scores, the exported model's (``best``) among them."""

    task: str
    metric: str  # the one the verdict compares: rmse or accuracy
    scores: dict[str, dict[str, float]]
    notes: dict[str, str] = field(default_factory=dict)
    windows: int = 0

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def metrics(self) -> dict[str, float]:
        """``test_<metric>_<method>``, as logged on the parent run."""
        return {f"test_{m}_{method}": v for method, row in self.scores.items() for m, v in row.items()}

    def best_baseline(self) -> str:
        """The baseline with the best test score on ``metric``."""
        sign = -1.0 if self.higher_is_better else 1.0
        candidates = [m for m in self.scores if m != "best" and math.isfinite(self.scores[m][self.metric])]
        return min(candidates, key=lambda m: sign * self.scores[m][self.metric])

    def model_wins(self) -> bool:
        model, base = self.scores["best"][self.metric], self.scores[self.best_baseline()][self.metric]
        return model > base if self.higher_is_better else model < base

    def accuracy_noise(self) -> float | None:
        """Half-width of a 95% interval on the difference of two accuracies measured on the same
        ``windows`` test examples (normal approximation, unpaired: on the safe side)."""
        if self.metric != "accuracy" or not self.windows:
            return None
        p = (self.scores["best"]["accuracy"] + self.scores[self.best_baseline()]["accuracy"]) / 2
        return 1.96 * math.sqrt(2 * p * (1 - p) / self.windows)

    def verdict(self, cell: str) -> str:
        """One plain sentence: does the best recurrent model beat the best baseline?"""
        base = self.best_baseline()
        model, other = self.scores["best"][self.metric], self.scores[base][self.metric]
        head = f"The best recurrent model ({cell}, test {self.metric} {model:.4f})"
        noise = self.accuracy_noise()
        if noise is not None and abs(model - other) < noise:
            return (f"{head} is level with the best baseline ({base}, test {self.metric} {other:.4f}): the "
                    f"difference, {model - other:+.4f}, is within the sampling error of {self.windows} test "
                    f"examples (+/-{noise:.4f} at 95%).")
        word = "beats" if self.model_wins() else "does NOT beat"
        return f"{head} {word} the best baseline ({base}, test {self.metric} {other:.4f})."


def evaluate(spec, data: TextSplits | SeriesSplits, model, lookback: int | None = None) -> Baselines:
    """Score the baselines and the exported model on the test split.

    Args:
        spec: the sweep spec (season, max_tokens and seed come from it).
        data: the splits the sweep used.
        model: the exported Keras model.
        lookback: the exported model's window length (forecasting).

    Returns:
        `Baselines` with a ``best`` row for the model.
    """
    if isinstance(data, TextSplits):
        return classification_baselines(data, model, spec.dataset.options.get("max_tokens"), spec.tuner.seed)
    if isinstance(data, SequenceSplits):
        return sequence_baselines(data, model)
    return forecasting_baselines(data, model, lookback)


def sequence_baselines(data: SequenceSplits, model) -> Baselines:
    """Independent sequences (the adding problem) have no past to repeat: the one baseline is the
    training targets' mean (for the adding problem about 1, test MSE about 0.167). No MASE."""
    x, y_test = data.windows("test", data.length)
    mean = data.y["train"].astype("float64").mean(axis=0)
    scores = {}
    if model is not None:
        predicted = np.asarray(model.predict(x, verbose=0), dtype="float64").reshape(y_test.shape)
        scores["best"] = forecast_scores(y_test, predicted, math.nan)
    scores["mean"] = forecast_scores(y_test, np.broadcast_to(mean, y_test.shape), math.nan)
    notes = {"mean": f"always the training mean {float(mean.mean()):.4g}"}
    return Baselines(task="forecasting", metric="rmse", scores=scores, notes=notes, windows=len(y_test))


def forecasting_baselines(data: SeriesSplits, model, lookback: int) -> Baselines:
    """Naive, seasonal naive, drift and ARIMA/ETS, and the model, on the model's test windows."""
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
    scores = {}
    if model is not None:
        predicted = np.asarray(model.predict(x, verbose=0), dtype="float64").reshape(y_test.shape)
        scores["best"] = forecast_scores(y_test, predicted, scale)
    for method, f in forecasts.items():
        scores[method] = forecast_scores(y_test, f, scale)
    return Baselines(task="forecasting", metric="rmse", scores=scores, notes=notes, windows=len(starts))


def majority_accuracy(train_labels: np.ndarray, test_labels: np.ndarray) -> tuple[float, int]:
    """Accuracy of always answering the most frequent training class (ties: the lowest index)."""
    cls = int(np.argmax(np.bincount(train_labels)))
    return float(np.mean(test_labels == cls)), cls


def bow_accuracy(data: TextSplits, max_tokens: int | None, seed: int) -> float:
    """Test accuracy of tf-idf + one softmax Dense layer (zero-initialised), early-stopped on val loss."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    vectorize = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode="tf_idf", name="tf_idf")
    vectorize.adapt(data.part("train")[0].astype(str))
    text = keras.Input(shape=(), dtype="string", name="text")
    # Zero weights, as a logistic regression starts: random ones on tf-idf inputs make the first
    # epochs worse than chance and early stopping then keeps them on a small set.
    probs = keras.layers.Dense(len(data.class_names), activation="softmax", kernel_initializer="zeros",
                               name="probabilities")(vectorize(text))
    bow = keras.Model(text, probs, name="bag_of_words")
    bow.compile(optimizer=keras.optimizers.Adam(BOW_LEARNING_RATE), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])

    def part(name: str, shuffle: bool = False):
        x, y = data.part(name)
        ds = tf.data.Dataset.from_tensor_slices((x.astype(str), y))
        if shuffle:
            ds = ds.shuffle(len(y), seed=seed)
        return ds.batch(BOW_BATCH)

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=3, restore_best_weights=True)
    bow.fit(part("train", shuffle=True), validation_data=part("val"), epochs=BOW_EPOCHS, callbacks=[stop],
            verbose=0, shuffle=False)  # the pipeline shuffles
    return float(bow.evaluate(part("test"), return_dict=True, verbose=0)["accuracy"])


def classification_baselines(data: TextSplits, model, max_tokens: int | None, seed: int) -> Baselines:
    """Majority class and bag of words, and the model, on the test texts."""
    import tensorflow as tf

    texts, labels = data.part("test")
    scores = {}
    if model is not None:
        probs = model.predict(tf.data.Dataset.from_tensor_slices(texts.astype(str)).batch(256), verbose=0)
        scores["best"] = {"accuracy": float(np.mean(np.argmax(probs, axis=1) == labels))}
    scores["bow"] = {"accuracy": bow_accuracy(data, max_tokens, seed)}
    majority, cls = majority_accuracy(data.part("train")[1], labels)
    scores["majority"] = {"accuracy": majority}
    notes = {"bow": f"tf-idf over {max_tokens or 'all'} tokens + softmax", "majority": f"always {data.class_names[cls]!r}"}
    return Baselines(task="classification", metric="accuracy", scores=scores, notes=notes, windows=len(labels))
