"""The text task: vocabulary from the training split, length-bucketed batches, text baselines.

Texts are vectorised once per sweep (the vocabulary comes from the training split) and batched
by length: sentences of similar length share a batch, padded to their bucket's boundary, so
little time goes into padding and an XLA-compiled model sees only a handful of shapes. The
baselines are the majority class of the training split and the two linear models of
`lstm_models.tasks.linear`: a tf-idf bag of words and NBSVM.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from lstm_models.data.splits import PARTS, TextSplits
from lstm_models.errors import ConfigError
from lstm_models.models.build import ModelSpec, TextInputs, vectorizer
from lstm_models.tasks.baselines import Baselines
from lstm_models.tasks.feed import feed

_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


class TextTask:
    """Classification of texts: what a sweep needs from `TextSplits`."""

    name = "classification"
    test_metric = "accuracy"
    unit = "examples"

    def __init__(self, data: TextSplits):
        self.data = data

    def test_dependence(self) -> int:
        """Sentences are independent examples: the verdict resamples them one by one."""
        return 0

    def make_inputs(self, max_tokens: int | None = None) -> TextInputs:
        """The vocabulary of the training split (and the class count)."""
        import keras

        vectorize = keras.layers.TextVectorization(max_tokens=max_tokens)
        vectorize.adapt(self.data.part("train")[0].astype(str))
        vocab = vectorize.get_vocabulary()[2:]  # drop '' and [UNK]: the layer adds them back
        return TextInputs(vocabulary=tuple(vocab), num_classes=len(self.data.class_names))

    def batches(self, inputs: TextInputs, bucketing: bool = True) -> "TextBatches":
        return TextBatches(self.data, inputs, bucketing)

    def baselines(self, model, max_tokens: int | None, seed: int, lookback: int | None = None) -> Baselines:
        return classification_baselines(self.data, model, max_tokens, seed)

    def test_losses(self, model, lookback: int | None = None) -> np.ndarray:
        """A served model's 0/1 error on each test text (the paired tests' losses)."""
        return model_errors(self.data, model)

    def export_meta(self, spec: ModelSpec) -> tuple[dict, np.ndarray]:
        """What the export records about its input and output, and a sample of raw inputs."""
        sample = self.data.part("test")[0][:8].astype(str)
        return {"task": self.name, "class_names": list(self.data.class_names), "input": "a batch of strings"}, sample

    def examples(self, model, meta: dict, n: int) -> list[tuple[np.ndarray, list[str]]]:
        """The first ``n`` test texts as the exported model's inputs, with a label per step."""
        return [text_input(model, str(t)) for t in self.data.part("test")[0][:n]]

    def tags(self) -> dict[str, str]:
        """What the parent run records about the data."""
        return {"class_names": ", ".join(self.data.class_names), "test_size": str(self.data.sizes()["test"])}

    def describe(self) -> list[str]:
        """Split sizes and class balance."""
        data, sizes = self.data, self.data.sizes()
        lines = [f"{data.name}: classification, {len(data.class_names)} classes "
                 f"({', '.join(data.class_names)}), {sum(sizes.values()):,} texts"]
        for part in PARTS:
            counts = np.bincount(data.labels[part], minlength=len(data.class_names))
            balance = ", ".join(f"{n} {c:,} ({c / max(sizes[part], 1):.1%})" for n, c in zip(data.class_names, counts))
            lines.append(f"  {part:<5} {sizes[part]:>8,} texts   {balance}")
        return lines


def bucket_boundaries(lengths: np.ndarray) -> list[int]:
    """Powers of two from 8 up to the first above the longest training sequence."""
    longest = int(lengths.max()) if len(lengths) else 1
    bounds = [8]
    while bounds[-1] <= longest:
        bounds.append(bounds[-1] * 2)
    return bounds


class TextBatches:
    """The ``tf.data`` pipeline of one part for one model spec: token ids, bucketed by length.

    The batches are cut as ``tf.data``'s ``bucket_by_sequence_length`` cuts them (a bucket's batch
    leaves when it is full, the part-filled ones at the end), but in numpy, a whole epoch at a
    time: tf.data's ``shuffle`` and bucketing work element by element, 0.66 s per sentiment epoch
    against 0.10 s, and an epoch with its validation took 1.25x (LSTM) to 1.32x (SimpleRNN) as
    long. Dense series windows stay on tf.data (`lstm_models.tasks.series`).

    Args:
        data: the loaded splits.
        inputs: the vocabulary prepared from the training split.
        bucketing: batch texts by length (else every batch is padded to its longest text).
    """

    def __init__(self, data: TextSplits, inputs: TextInputs, bucketing: bool = True):
        self.data = data
        self.bucketing = bucketing
        vectorize = vectorizer(inputs)
        tokens = {p: _token_ids(vectorize, data.part(p)[0]) for p in PARTS}  # (flat ids, lengths)
        self.boundaries = bucket_boundaries(tokens["train"][1])
        self.flat = {p: flat for p, (flat, _) in tokens.items()}
        self.starts = {p: np.cumsum(lengths) - lengths for p, (_, lengths) in tokens.items()}
        # Never cut: the served model reads a whole text, so a val or test text longer than any
        # training text is scored whole too, in a last bucket as wide as its batch's longest.
        self.lengths = {p: lengths for p, (_, lengths) in tokens.items()}
        self.buckets = {p: np.searchsorted(self.boundaries, n, side="right") for p, n in self.lengths.items()}

    def __call__(self, part: str, spec: ModelSpec, shuffle_seed: int | None = None):
        """The part's batches; ``shuffle_seed``: shuffled, differently each epoch (the rng is seeded
        by the seed and the epoch's number), the same on every run."""
        import tensorflow as tf

        labels, epochs = self.data.part(part)[1], itertools.count()

        def batches():
            rng = np.random.default_rng([shuffle_seed, next(epochs)]) if shuffle_seed is not None else None
            for rows in self.cut(part, spec.batch_size, rng):
                yield self.padded(part, rows), labels[rows]

        signature = (tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None], tf.as_dtype(labels.dtype)))
        ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
        return feed(ds.apply(tf.data.experimental.assert_cardinality(len(self.cut(part, spec.batch_size)))))

    def cut(self, part: str, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """The rows of each batch of one epoch, in the order they are trained on."""
        n = len(self.lengths[part])
        order = rng.permutation(n) if rng is not None else np.arange(n)
        key = self.buckets[part][order] if self.bucketing else np.zeros(n, dtype=int)
        batches = []
        for b in np.unique(key):
            at = np.flatnonzero(key == b)  # where the bucket's texts come in the stream
            for k in range(0, len(at), batch_size):
                chunk = at[k: k + batch_size]
                leaves = chunk[-1] if len(chunk) == batch_size else n + b  # part-filled: at the end
                batches.append((leaves, order[chunk]))
        return [rows for _, rows in sorted(batches, key=lambda t: t[0])]

    def padded(self, part: str, rows: np.ndarray, width: int | None = None) -> np.ndarray:
        """The rows' token ids, zero-padded to ``width``: by default their bucket's boundary less one
        (without buckets, their longest); a text longer than ``width`` is cut."""
        lengths = self.lengths[part][rows]
        bucket = int(self.buckets[part][rows[0]])
        if width is None and self.bucketing and bucket < len(self.boundaries):
            width = self.boundaries[bucket] - 1
        elif width is None:  # no buckets, or texts longer than any training text
            width = max(int(lengths.max()), 1)
        lengths = np.minimum(lengths, width)
        steps = np.arange(width)
        inside = steps < lengths[:, None]
        out = np.zeros((len(rows), width), dtype="int64")
        out[inside] = self.flat[part][(self.starts[part][rows][:, None] + steps)[inside]]
        return out


def _token_ids(vectorize, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All texts' token ids end to end, and each text's count."""
    import tensorflow as tf

    ids = np.asarray(vectorize(tf.constant(texts.astype(str)))).astype("int64")
    inside = ids > 0  # the vectoriser pads with 0 after a text's last token; no token is 0
    return ids[inside], inside.sum(axis=1)


def text_input(model, text: str) -> tuple[np.ndarray, list[str]]:
    """One string as the model's input, and the token of each step (unknown words marked)."""
    vectorize = next((l for l in model.layers if type(l).__name__ == "TextVectorization"), None)
    if vectorize is None:
        raise ConfigError(f"model {model.name!r} takes no text (no TextVectorization layer); give --values")
    ids = np.asarray(vectorize(np.array([text]))).reshape(-1)
    if ids.size == 0 or not ids.any():
        raise ConfigError(f"--text {text!r}: no word left after lower-casing and removing punctuation")
    vocab = vectorize.get_vocabulary()
    words = re.sub(_PUNCTUATION, "", text.lower()).split()
    if len(words) != len(ids):  # a custom standardisation: show the vocabulary's tokens
        words = [vocab[i] for i in ids]
    tokens = [w if i != 1 else f"{w} (unknown)" for w, i in zip(words, ids)]
    return np.array([text], dtype=object), tokens


def majority_class(train_labels: np.ndarray) -> int:
    """The most frequent training class (ties: the lowest index)."""
    return int(np.argmax(np.bincount(train_labels)))


def model_errors(data: TextSplits, model) -> np.ndarray:
    """A served model's (strings in) 0/1 error on each test text."""
    import tensorflow as tf

    texts, labels = data.part("test")
    probs = model.predict(feed(tf.data.Dataset.from_tensor_slices(texts.astype(str)).batch(256)), verbose=0)
    return (np.argmax(probs, axis=1) != labels).astype("float64")


def classification_baselines(data: TextSplits, model, max_tokens: int | None, seed: int) -> Baselines:
    """Majority class, bag of words and NBSVM, and the model, on the test texts (with each one's 0/1 errors)."""
    from lstm_models.tasks.linear import bow_predictions, nbsvm_predictions

    labels = data.part("test")[1]
    predicted, notes = {}, {}
    predicted["nbsvm"], notes["nbsvm"] = nbsvm_predictions(data, seed)
    predicted["bow"], notes["bow"] = bow_predictions(data, max_tokens, seed)
    cls = majority_class(data.part("train")[1])
    predicted["majority"], notes["majority"] = np.full(len(labels), cls), f"always {data.class_names[cls]!r}"
    losses = {m: (p != labels).astype("float64") for m, p in predicted.items()}
    if model is not None:
        losses = {"best": model_errors(data, model), **losses}
    scores = {m: {"accuracy": float(1.0 - e.mean())} for m, e in losses.items()}
    return Baselines(task="classification", metric="accuracy", scores=scores, notes=notes, windows=len(labels),
                     losses=losses)
