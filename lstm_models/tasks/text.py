"""The text task: vocabulary from the training split, length-bucketed batches, text baselines.

Texts are vectorised once per sweep (the vocabulary comes from the training split) and batched
by length: sentences of similar length share a batch, padded to their bucket's boundary, so
little time goes into padding and an XLA-compiled model sees only a handful of shapes. The
baselines are the majority class of the training split and the two linear models of
`lstm_models.tasks.linear`: a tf-idf bag of words and NBSVM.
"""

from __future__ import annotations

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

    Args:
        data: the loaded splits.
        inputs: the vocabulary prepared from the training split.
        bucketing: batch texts by length (else every batch is padded to its longest text).
    """

    def __init__(self, data: TextSplits, inputs: TextInputs, bucketing: bool = True):
        self.data = data
        self.bucketing = bucketing
        vectorize = vectorizer(inputs)
        self.tokens = {p: _ragged_ids(vectorize, data.part(p)[0]) for p in PARTS}
        self.boundaries = bucket_boundaries(self.tokens["train"].row_lengths().numpy())
        self.max_length = self.boundaries[-1] - 1

    def __call__(self, part: str, spec: ModelSpec, shuffle_seed: int | None = None):
        import tensorflow as tf

        labels = self.data.part(part)[1]
        ds = tf.data.Dataset.from_tensor_slices((self.tokens[part], labels))
        ds = ds.map(lambda t, y: (t[: self.max_length], y))  # longer than any training text
        if shuffle_seed is not None:
            ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
        if self.bucketing:
            ds = ds.bucket_by_sequence_length(
                lambda t, y: tf.shape(t)[0], self.boundaries,
                [spec.batch_size] * (len(self.boundaries) + 1), pad_to_bucket_boundary=True)
        else:
            ds = ds.padded_batch(spec.batch_size)
        return feed(ds)


def _ragged_ids(vectorize, texts: np.ndarray):
    import tensorflow as tf

    ids = vectorize(tf.constant(texts.astype(str)))
    ids = tf.RaggedTensor.from_tensor(ids, padding=0)
    return tf.cast(ids, tf.int64)


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
