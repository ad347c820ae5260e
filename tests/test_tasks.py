"""The tasks: text and series inputs, batches, and what each says about its data."""

import numpy as np
import pytest

from lstm_models.models.build import ModelSpec
from lstm_models.tasks import task_for
from lstm_models.tasks.text import bucket_boundaries

from conftest import toy_series_splits, toy_text_splits


def test_bucket_boundaries_cover_the_longest_text():
    assert bucket_boundaries(np.array([3, 9, 20])) == [8, 16, 32]
    assert bucket_boundaries(np.array([31, 32])) == [8, 16, 32, 64]


@pytest.mark.parametrize("bucketing", [True, False])
def test_text_batches_hold_every_example_once(bucketing):
    data = toy_text_splits()
    task = task_for(data)
    pipe = task.batches(task.make_inputs(), bucketing=bucketing)
    spec = ModelSpec(task="classification", batch_size=16)
    seen, shapes = 0, set()
    for ids, labels in pipe("train", spec, shuffle_seed=1):
        seen += len(labels)
        shapes.add(ids.shape[1])
        assert ids.dtype.name == "int64" and (ids.numpy() >= 0).all()
    assert seen == 160
    if bucketing:
        assert shapes == {7}  # five-word texts, padded to their bucket's boundary minus one
    else:
        assert shapes == {5}


def test_series_windows_follow_the_spec_lookback():
    data = toy_series_splits()
    task = task_for(data)
    pipe = task.batches(task.make_inputs())
    x, y = next(iter(pipe("val", ModelSpec(task="forecasting", lookback=6, batch_size=100))))
    assert x.shape == (20, 6, 1) and y.shape == (20, 1)
    np.testing.assert_array_equal(y.numpy()[:, 0], data.values[80:100, 0])


@pytest.mark.parametrize("splits", [toy_text_splits, toy_series_splits])
def test_every_pipeline_is_fed_without_the_tf_data_autotuner(splits):
    # With the autotuner on, Keras epochs of 2-4 s sometimes ended at exactly 2.55 s or 5.11 s.
    data = splits()
    task = task_for(data)
    pipe = task.batches(task.make_inputs())
    spec = ModelSpec(task="classification" if splits is toy_text_splits else "forecasting", batch_size=16, lookback=6)
    for part, seed in (("train", 1), ("val", None), ("test", None)):
        assert pipe(part, spec, shuffle_seed=seed).options().autotune.enabled is False
