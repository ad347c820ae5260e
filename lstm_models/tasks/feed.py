"""How every pipeline of the package hands its batches to Keras."""

from __future__ import annotations

PREFETCH = 2  # batches: the data is in memory, so one batch ready while one trains is enough


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
