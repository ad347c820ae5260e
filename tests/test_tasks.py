"""The tasks: text and series inputs, batches, and what each says about its data."""

import numpy as np
import pytest

from lstm_models.models.build import ModelSpec
from lstm_models.tasks import task_for

from conftest import toy_series_splits, toy_text_splits


def test_text_batches_hold_every_example_once_in_batches_of_one_length():
    data = toy_text_splits()
    texts, labels = data.part("train")
    texts = texts.copy()
    texts[:3] = ["word", "two words", "!!!"]  # 1 and 2 words, and none left after punctuation
    data.texts["train"] = texts
    task = task_for(data)
    pipe = task.batches(task.make_inputs())
    spec = ModelSpec(task="classification", batch_size=16)
    seen, lengths, sizes = 0, [], []
    for ids, batch_labels in pipe("train", spec, shuffle_seed=1):
        ids = ids.numpy()
        seen += len(batch_labels)
        lengths.append(ids.shape[1])
        sizes.append(len(ids))
        assert ids.dtype.name == "int64" and (ids >= 0).all()
        assert (ids != 0).all() or ids.shape[1] == 1  # no padding: only the empty text's one id
    assert seen == 160
    assert sorted(set(lengths)) == [1, 2, 5]  # the toy texts have five words
    assert sorted(s for s, n in zip(sizes, lengths) if n < 5) == [1, 2]  # "word" and "!!!" share length 1
    assert max(sizes) == 16


def test_series_windows_follow_the_spec_lookback():
    data = toy_series_splits()
    task = task_for(data)
    pipe = task.batches(task.make_inputs())
    x, y = next(iter(pipe("val", ModelSpec(task="forecasting", lookback=6, batch_size=100))))
    assert x.shape == (20, 6, 1) and y.shape == (20, 1)
    np.testing.assert_array_equal(y.numpy()[:, 0], data.values[80:100, 0])
