"""Baselines: arithmetic checked by hand, the same test windows as the models, the verdict."""

import math
import re

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
    assert report.windows == 7 and set(report.scores) == {"naive", "seasonal_naive", "drift", "ets", "theta"}
    scale = float(np.mean(np.abs(y[4:24] - y[:20])))  # = 4: the season repeats, the line rises 1 a step
    assert scale == 4.0
    naive = np.repeat(y[starts - 1][:, None], 2, axis=1)
    assert report.scores["naive"] == pytest.approx(forecast.forecast_scores(targets, naive, scale))
    # A sawtooth of period 4 plus a line: the seasonal naive is off by exactly 4 everywhere.
    assert report.scores["seasonal_naive"] == pytest.approx(
        {"rmse": 4.0, "mae": 4.0, "mase": 1.0, "smape": forecast.smape(targets, targets - 4)})
    assert report.notes["seasonal_naive"] == "season 4" and report.notes["ets"].startswith("ETS(A,")
    assert report.notes["theta"] == "Theta, additive season 4"  # the saw starts at 0
    # The paired test's losses: each window's mean squared error over the horizon.
    np.testing.assert_allclose(report.losses["naive"], np.mean((naive - targets) ** 2, axis=1))
    assert report.horizon == 2


def test_arima_on_a_series_without_season():
    rng = np.random.default_rng(5)
    values = np.zeros(80)
    for t in range(1, 80):  # AR(1) around 20
        values[t] = 0.7 * values[t - 1] + rng.normal()
    data = SeriesSplits(name="ar1", values=(values + 20).reshape(-1, 1).astype("float32"), columns=("y",),
                        val_start=56, test_start=68, horizon=1)
    report = series.forecasting_baselines(data, None, lookback=4)
    assert set(report.scores) == {"naive", "seasonal_naive", "drift", "arima", "theta"} and report.windows == 12
    assert report.scores["seasonal_naive"] == report.scores["naive"]  # season 1
    assert report.notes["arima"].startswith("ARIMA(") and report.notes["arima"].endswith("(d by KPSS)")
    assert all(math.isfinite(v) for row in report.scores.values() for v in row.values())


def test_a_constant_series_forecasts_its_constant():
    """KPSS has no statistic on a constant (the sweep stopped with a traceback after its trials),
    and statsmodels' Theta fitted a slope to one (5.0 went on as 11.25)."""
    data = SeriesSplits(name="flat", values=np.full((60, 1), 5.0, dtype="float32"), columns=("y",),
                        val_start=42, test_start=51, horizon=2)
    report = series.forecasting_baselines(data, None, lookback=4)
    assert set(report.scores) == {"naive", "seasonal_naive", "drift", "arima", "theta"} and report.windows == 8
    for method in ("naive", "drift", "theta"):
        assert report.scores[method]["rmse"] == 0.0 and math.isnan(report.scores[method]["mase"])  # no error to scale by
    assert report.scores["arima"]["rmse"] < 1e-4
    assert report.notes["arima"].endswith("(d 0: a constant training split)")


def test_theta_by_hand_on_a_line():
    # On a line of slope 1, SES settles on the last value (alpha -> 1) and theta = 2 adds half the
    # slope per step: y[t-1] + 0.5 h.
    y = np.arange(1.0, 41.0)
    out, note = forecast.theta(y, np.array([30, 35]), 2, 1)
    assert note == "Theta, no season"
    np.testing.assert_allclose(out, [[30.5, 31.0], [35.5, 36.0]], atol=0.01)


def test_majority_class_by_hand():
    assert text.majority_class(np.array([0, 1, 1, 2, 1])) == 1
    assert text.majority_class(np.array([0, 1])) == 0  # tie: the lowest


@pytest.mark.slow
def test_bag_of_words_learns_the_toy_sentiment(seed):
    data = toy_text_splits()
    report = text.classification_baselines(data, None, max_tokens=50, seed=seed)
    assert report.scores["majority"] == {"accuracy": 0.5}  # 80/80 in train: class 0; 20 of 40 in test
    assert report.scores["bow"]["accuracy"] >= 0.95 and report.scores["nbsvm"]["accuracy"] >= 0.95
    assert re.fullmatch(r"tf-idf over 50 tokens \+ logistic regression, C=[0-9.]+ by val", report.notes["bow"])
    assert report.notes["majority"] == "always 'negative'"
    assert report.notes["nbsvm"].startswith("NB log-count ratios on binarized uni+bigrams (")
    np.testing.assert_array_equal(report.losses["majority"], data.part("test")[1] != 0)


@pytest.mark.slow
def test_bag_of_words_with_three_classes(seed):
    from lstm_models.data.splits import TextSplits

    words = ["awful", "fine", "superb"]
    texts = np.array([f"the film was {words[i % 3]} really" for i in range(90)], dtype=object)
    labels = np.arange(90, dtype="int32") % 3
    parts = {"train": slice(0, 60), "val": slice(60, 75), "test": slice(75, 90)}
    data = TextSplits(name="stars", texts={p: texts[s] for p, s in parts.items()},
                      labels={p: labels[s] for p, s in parts.items()}, class_names=("1", "2", "3"))
    from lstm_models.tasks.linear import bow_predictions, nbsvm_predictions

    np.testing.assert_array_equal(bow_predictions(data, None, seed)[0], labels[75:])  # one softmax model

    np.testing.assert_array_equal(nbsvm_predictions(data, seed)[0], labels[75:])  # one model per class


def test_metric_names_best_baseline_and_the_paired_verdict():
    rng = np.random.default_rng(0)
    y_err = rng.normal(size=60)
    report = Baselines(task="forecasting", metric="rmse", windows=60, scores={
        "best": {"rmse": 2.0, "mase": 0.5}, "naive": {"rmse": 3.0, "mase": 0.9}, "arima": {"rmse": 1.5, "mase": 0.4}},
        losses={"best": (2 * y_err) ** 2, "naive": (3 * y_err) ** 2, "arima": (1.5 * y_err) ** 2})
    assert report.metrics() == {"test_rmse_best": 2.0, "test_mase_best": 0.5, "test_rmse_naive": 3.0,
                                "test_mase_naive": 0.9, "test_rmse_arima": 1.5, "test_mase_arima": 0.4}
    assert report.best_baseline() == "arima" and not report.model_wins()
    p, test = report.paired("arima")
    assert test == "Diebold-Mariano test" and p < 1e-6  # worse on every window
    assert report.verdict("gru") == ("The best recurrent model (gru, test rmse 2.0000) does NOT beat the best "
                                     f"baseline (arima, test rmse 1.5000): the difference, +0.5000, on the same 60 "
                                     f"test windows: Diebold-Mariano test, p = {p:.2g}.")
    labels_right = np.r_[np.zeros(80), np.ones(20)]  # the model: 80 right
    text = Baselines(task="classification", metric="accuracy", windows=100,
                     scores={"best": {"accuracy": 0.8}, "bow": {"accuracy": 0.7}, "majority": {"accuracy": 0.5}},
                     losses={"best": labels_right, "bow": np.r_[np.ones(10), np.zeros(70), np.ones(20)],
                             "majority": np.r_[np.ones(50), np.zeros(50)]})
    # Discordant pairs: the bag of words alone wrong on 10, the model alone wrong on none.
    assert text.paired("bow") == (pytest.approx(2 * 0.5 ** 10), "McNemar's exact test")
    assert text.verdict("lstm") == ("The best recurrent model (lstm, test accuracy 0.8000) beats the best baseline "
                                    "(bow, test accuracy 0.7000): the difference, +0.1000, on the same 100 test "
                                    "examples: McNemar's exact test, p = 0.002.")
    close = Baselines(task="classification", metric="accuracy", windows=100,
                      scores={"best": {"accuracy": 0.8}, "bow": {"accuracy": 0.78}},
                      losses={"best": labels_right, "bow": np.r_[np.ones(4), np.zeros(78), np.ones(18)]})
    assert close.verdict("lstm").startswith("The best recurrent model (lstm, test accuracy 0.8000) is level with the "
                                            "best baseline (bow, test accuracy 0.7800): the difference, +0.0200")


def test_paired_tests_on_identical_and_constant_predictors():
    from lstm_models.tasks.paired import diebold_mariano, mcnemar

    rng = np.random.default_rng(1)
    errors = rng.integers(0, 2, 200)
    assert mcnemar(errors, errors) == 1.0  # two identical classifiers
    y = np.sin(np.arange(200) / 5)
    model = (y + rng.normal(scale=0.1, size=200) - y) ** 2
    assert diebold_mariano(model, model.copy()) == 1.0
    constant = (0.0 - y) ** 2  # always 0 against a sine
    assert diebold_mariano(model, constant, horizon=1) < 1e-6
    assert mcnemar(np.zeros(200), np.r_[np.ones(100), np.zeros(100)]) < 1e-20


def test_linear_baselines_choose_c_on_val_with_ties_to_the_smallest():
    from lstm_models.tasks.linear import C_GRID, _by_val

    val = np.array([0, 1, 1, 0])
    right = {10.0: 4, 30.0: 4, 0.1: 1}  # how many val labels each C's model gets right

    def predict(c):
        return np.where(np.arange(4) < right.get(c, 2), val, 1 - val)

    assert _by_val(lambda c: c, predict, val) == (10.0, 10.0) and 10.0 in C_GRID
