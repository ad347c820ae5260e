"""The tasks: text and series inputs, batches, and what each says about its data."""

import numpy as np
import pytest

from lstm_models.models.build import ModelSpec
from lstm_models.tasks import task_for
from lstm_models.tasks.text import bucket_boundaries

from conftest import toy_series_splits, toy_text_splits


def _mixed_length_splits():
    """Texts of 1 to 40 words: five buckets (8, 16, 32, 64)."""
    from lstm_models.data.splits import TextSplits

    rng = np.random.default_rng(1)
    words = ["great", "awful", "the", "film", "was", "a", "plot", "dull"]
    texts = np.array([" ".join(rng.choice(words, n)) for n in rng.integers(1, 41, 300)], dtype=object)
    labels = rng.integers(0, 2, 300).astype("int32")
    parts = {"train": slice(0, 200), "val": slice(200, 250), "test": slice(250, 300)}
    return TextSplits(name="mixed", texts={p: texts[s] for p, s in parts.items()},
                      labels={p: labels[s] for p, s in parts.items()}, class_names=("negative", "positive"))


def _epoch(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_text_batches_are_length_buckets_holding_each_text_once_with_its_own_ids():
    from lstm_models.models.build import vectorizer

    data = _mixed_length_splits()
    task = task_for(data)
    inputs = task.make_inputs()
    pipe = task.batches(inputs)
    assert pipe.boundaries == [8, 16, 32, 64]
    want = {}  # each training text's ids -> its label
    for ids, label in zip(np.asarray(vectorizer(inputs)(data.part("train")[0].astype(str))), data.part("train")[1]):
        want.setdefault(tuple(ids[ids > 0]), []).append(int(label))
    ds = pipe("train", ModelSpec(task="classification", batch_size=16), shuffle_seed=3)
    batches = _epoch(ds)
    assert int(ds.cardinality()) == len(batches)
    got, partial = {}, []
    for x, y in batches:
        lengths = (x > 0).sum(axis=1)
        bound = x.shape[1] + 1  # padded to its bucket's boundary, less one
        lower = 0 if bound == pipe.boundaries[0] else bound // 2
        assert bound in pipe.boundaries and ((lengths >= lower) & (lengths < bound)).all()
        for row, label in zip(x, y):
            got.setdefault(tuple(row[row > 0]), []).append(int(label))
        partial.append(len(y) < 16)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert sum(len(y) for _, y in batches) == 200
    first_partial = partial.index(True)
    assert all(partial[first_partial:]) and sum(partial) <= len(pipe.boundaries)  # one per bucket, at the end
    again = _epoch(ds)
    assert [y.tolist() for _, y in again] != [y.tolist() for _, y in batches]  # reshuffled each epoch
    fresh = _epoch(pipe("train", ModelSpec(task="classification", batch_size=16), shuffle_seed=3))
    assert all((a == b).all() and (p == q).all() for (a, p), (b, q) in zip(batches, fresh))  # the same on every run
    unshuffled = [y.tolist() for _, y in _epoch(pipe("val", ModelSpec(task="classification", batch_size=16)))]
    assert unshuffled == [y.tolist() for _, y in _epoch(pipe("val", ModelSpec(task="classification", batch_size=16)))]


def test_a_test_text_longer_than_any_training_text_is_scored_whole_as_the_served_model_reads_it():
    """It was cut to the last bucket's width (less than 64 tokens here): the test score was computed
    on other inputs than the exported model, which reads the whole text, is served."""
    from lstm_models.data.splits import TextSplits
    from lstm_models.models.build import vectorizer

    data = _mixed_length_splits()
    long_text = " ".join(["great", "dull"] * 50)  # 100 tokens; the longest training text has 40
    texts = {**data.texts, "test": np.concatenate([data.texts["test"], np.array([long_text], dtype=object)])}
    labels = {**data.labels, "test": np.concatenate([data.labels["test"], np.array([1], "int32")])}
    data = TextSplits(name="mixed", texts=texts, labels=labels, class_names=data.class_names)
    task = task_for(data)
    inputs = task.make_inputs()
    pipe = task.batches(inputs)
    assert pipe.boundaries == [8, 16, 32, 64]
    batches = _epoch(pipe("test", ModelSpec(task="classification", batch_size=16)))
    assert sum(len(y) for _, y in batches) == 51
    (wide,) = [x for x, _ in batches if x.shape[1] > 63]  # its own batch, as wide as itself
    served = np.asarray(vectorizer(inputs)(np.array([long_text])))[0]
    assert wide.shape == (1, 100) and (wide[0] == served[served > 0]).all()
    assert max(x.shape[1] for x, _ in batches if x.shape[1] <= 63) == 63  # the others in their buckets


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
