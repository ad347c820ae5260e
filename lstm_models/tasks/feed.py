"""How the package's pipelines hand their batches to Keras: through ``tf.data`` with its autotuner
off (`feed`); text batches are cut in numpy, one epoch at a time (`epochs`)."""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import numpy as np

PREFETCH = 2  # batches: the data is in memory, so one batch ready while one trains is enough


def epochs(batches: Callable[[np.random.Generator | None], Iterator[tuple]], signature, count: int,
           shuffle_seed: int | None = None):
    """A dataset that calls ``batches(rng)`` for each epoch's ``count`` batches.

    ``rng`` is seeded by the seed and the epoch's number, so that each epoch is shuffled
    differently and every run the same; ``None`` without a seed (validation, test).

    tf.data's own ``shuffle`` and ``bucket_by_sequence_length`` do the same element by element:
    0.66 s per sentiment epoch against 0.10 s, and an epoch with its validation took 1.25x (LSTM)
    to 1.32x (SimpleRNN) as long."""
    import tensorflow as tf

    counter = itertools.count()

    def generate():
        rng = np.random.default_rng([shuffle_seed, next(counter)]) if shuffle_seed is not None else None
        yield from batches(rng)

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return feed(ds.apply(tf.data.experimental.assert_cardinality(count)))


def feed(ds):
    """``ds`` prefetched, with tf.data's autotuner off.

    Under ``model.fit`` the autotuner stalled some epochs: with it on, epochs that take 2-4 s
    ended at exactly 2.55 s or 5.11 s (10 ms x (2^8 - 1) and 10 ms x (2^9 - 1)). Even a one-layer
    Dense model on an in-memory dataset did this, about one epoch in ten; with it off, no epoch
    did. In-memory token ids and windows leave it nothing to tune. Measured by ``make bench``
    (section ``pipeline``: ``ours`` against ``ours_autotuned``)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PREFETCH).with_options(options)
