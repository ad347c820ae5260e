"""Baselines: arithmetic checked by hand, the same test windows as the models, the verdict."""

import math

import numpy as np
import pytest

from lstm_models.tasks import forecast, series, text
from lstm_models.tasks.baselines import Baselines
from lstm_models.data.splits import SeriesSplits

from conftest import toy_text_splits

# Train is y[:6]; the test targets start at t = 6 and 7.
Y = np.array([1.0, 3.0, 2.0, 4.0, 3.0, 5.0, 4.0, 6.0])
STARTS = np.array([6, 7])


def test_naive_seasonal_naive_and_drift_by_hand():
    np.testing.assert_allclose(forecast.naive(Y, STARTS, 1), [[5.0], [4.0]])
    np.testing.assert_allclose(forecast.seasonal_naive(Y, STARTS, 1, 2), [[3.0], [5.0]])
    # Drift from origin t - 1: last + k * (last - y[0]) / (t - 1).
    np.testing.assert_allclose(forecast.drift(Y, STARTS, 1), [[5.0 + 4.0 / 5], [4.0 + 3.0 / 6]])
    # Multi-step: the seasonal naive repeats the last season; the drift keeps its slope.
    np.testing.assert_allclose(forecast.seasonal_naive(Y, np.array([6]), 3, 2), [[3.0, 5.0, 3.0]])
    np.testing.assert_allclose(forecast.drift(Y, np.array([6]), 3), [[5.8, 6.6, 7.4]])
    np.testing.assert_allclose(forecast.naive(Y, np.array([6]), 3), [[5.0, 5.0, 5.0]])


def test_metrics_by_hand():
    y = np.array([[4.0], [6.0]])
    f = np.array([[5.0], [4.0]])  # the naive forecasts: errors 1 and 2
    assert forecast.rmse(y, f) == pytest.approx(math.sqrt(2.5))
    assert forecast.mae(y, f) == pytest.approx(1.5)
    assert forecast.smape(y, f) == pytest.approx(100 * (2 / 9 + 4 / 10) / 2)
    assert forecast.smape(np.zeros((1, 1)), np.zeros((1, 1))) == 0.0
    # In-sample seasonal naive errors of the training part [1, 3, 2, 4, 3, 5].
    assert forecast.mase_scale(Y[:6], 2) == pytest.approx(1.0)  # |2-1|, |4-3|, |3-2|, |5-4|
    assert forecast.mase_scale(Y[:6], 1) == pytest.approx(8 / 5)  # 2, 1, 2, 1, 2
    scores = forecast.forecast_scores(y, f, 8 / 5)
    assert scores == pytest.approx({"rmse": math.sqrt(2.5), "mae": 1.5, "smape": 31.1111111, "mase": 1.5 / 1.6})


def test_forecasting_baselines_use_the_models_test_windows():
    values = (np.arange(40, dtype="float32") % 4 * 10 + np.arange(40, dtype="float32")).reshape(-1, 1)
    data = SeriesSplits(name="saw", values=values, columns=("y",), val_start=24, test_start=32, horizon=2, season=4)
    report = series.forecasting_baselines(data, None, lookback=5)
    y = values[:, 0].astype("float64")
    starts = np.arange(32, 39)  # every target block of 2 inside test
    targets = np.stack([y[t:t + 2] for t in starts])
    np.testing.assert_array_equal(targets, data.windows("test", 5)[1])
    np.testing.assert_array_equal(data.windows("test", 3)[1], data.windows("test", 5)[1])  # same for any lookback
    assert report.windows == 7 and set(report.scores) == {"naive", "seasonal_naive", "drift", "ets"}
    scale = float(np.mean(np.abs(y[4:24] - y[:20])))  # = 4: the season repeats, the line rises 1 a step
    assert scale == 4.0
    naive = np.repeat(y[starts - 1][:, None], 2, axis=1)
    assert report.scores["naive"] == pytest.approx(forecast.forecast_scores(targets, naive, scale))
    # A sawtooth of period 4 plus a line: the seasonal naive is off by exactly 4 everywhere.
    assert report.scores["seasonal_naive"] == pytest.approx(
        {"rmse": 4.0, "mae": 4.0, "mase": 1.0, "smape": forecast.smape(targets, targets - 4)})
    assert report.notes["seasonal_naive"] == "season 4" and report.notes["ets"].startswith("ETS(A,")


def test_arima_on_a_series_without_season():
    rng = np.random.default_rng(5)
    values = np.zeros(80)
    for t in range(1, 80):  # AR(1) around 20
        values[t] = 0.7 * values[t - 1] + rng.normal()
    data = SeriesSplits(name="ar1", values=(values + 20).reshape(-1, 1).astype("float32"), columns=("y",),
                        val_start=56, test_start=68, horizon=1)
    report = series.forecasting_baselines(data, None, lookback=4)
    assert set(report.scores) == {"naive", "seasonal_naive", "drift", "arima"} and report.windows == 12
    assert report.scores["seasonal_naive"] == report.scores["naive"]  # season 1
    assert report.notes["arima"].startswith("ARIMA(") and report.notes["arima"].endswith("(d by KPSS)")
    assert all(math.isfinite(v) for row in report.scores.values() for v in row.values())


def test_majority_class_by_hand():
    assert text.majority_accuracy(np.array([0, 1, 1, 2, 1]), np.array([1, 1, 0, 2])) == (0.5, 1)
    assert text.majority_accuracy(np.array([0, 1]), np.array([1, 1, 0])) == (pytest.approx(1 / 3), 0)  # tie: lowest


@pytest.mark.slow
def test_bag_of_words_learns_the_toy_sentiment(seed):
    data = toy_text_splits()
    report = text.classification_baselines(data, None, max_tokens=50, seed=seed)
    assert report.scores["majority"] == {"accuracy": 0.5}  # 80/80 in train: class 0; 20 of 40 in test
    assert report.scores["bow"]["accuracy"] >= 0.95
    assert report.notes == {"bow": "tf-idf over 50 tokens + softmax", "majority": "always 'negative'"}


@pytest.mark.slow
def test_bag_of_words_with_three_classes(seed):
    from lstm_models.data.splits import TextSplits

    words = ["awful", "fine", "superb"]
    texts = np.array([f"the film was {words[i % 3]} really" for i in range(90)], dtype=object)
    labels = np.arange(90, dtype="int32") % 3
    parts = {"train": slice(0, 60), "val": slice(60, 75), "test": slice(75, 90)}
    data = TextSplits(name="stars", texts={p: texts[s] for p, s in parts.items()},
                      labels={p: labels[s] for p, s in parts.items()}, class_names=("1", "2", "3"))
    assert text.bow_accuracy(data, None, seed) == 1.0


def test_metric_names_best_baseline_and_verdict():
    report = Baselines(task="forecasting", metric="rmse", scores={
        "best": {"rmse": 2.0, "mase": 0.5}, "naive": {"rmse": 3.0, "mase": 0.9}, "arima": {"rmse": 1.5, "mase": 0.4}})
    assert report.metrics() == {"test_rmse_best": 2.0, "test_mase_best": 0.5, "test_rmse_naive": 3.0,
                                "test_mase_naive": 0.9, "test_rmse_arima": 1.5, "test_mase_arima": 0.4}
    assert report.best_baseline() == "arima" and not report.model_wins()
    assert report.verdict("gru") == ("The best recurrent model (gru, test rmse 2.0000) does NOT beat the best "
                                     "baseline (arima, test rmse 1.5000).")
    text = Baselines(task="classification", metric="accuracy",
                        scores={"best": {"accuracy": 0.8}, "bow": {"accuracy": 0.7}, "majority": {"accuracy": 0.5}})
    assert text.best_baseline() == "bow" and text.model_wins()
    assert text.verdict("lstm") == ("The best recurrent model (lstm, test accuracy 0.8000) beats the best baseline "
                                    "(bow, test accuracy 0.7000).")
    close = Baselines(task="classification", metric="accuracy", windows=2113,
                         scores={"best": {"accuracy": 0.7776}, "bow": {"accuracy": 0.7747}, "majority": {"accuracy": 0.5}})
    # 1.96 * sqrt(2 * 0.77615 * 0.22385 / 2113) = 0.0251
    assert close.verdict("lstm") == ("The best recurrent model (lstm, test accuracy 0.7776) is level with the best "
                                     "baseline (bow, test accuracy 0.7747): the difference, +0.0029, is within the "
                                     "sampling error of 2113 test examples (+/-0.0251 at 95%).")
