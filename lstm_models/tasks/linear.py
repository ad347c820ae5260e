"""The two linear text baselines, each an L2 logistic regression whose C is chosen on val.

- ``bow``: tf-idf over the training split's most frequent words and punctuation marks, one
  softmax (multinomial) logistic regression, the classic bag of words.
- ``nbsvm``: the strongest simple text classifier (Wang & Manning 2012, its logistic-regression
  form). Binarized unigram and bigram counts, each feature scaled by its naive-Bayes log-count
  ratio ``r = log((p / |p|1) / (q / |q|1))`` (p, q: the smoothed feature counts in and out of a
  class). More than two classes: one such model per class against the rest, the highest score
  wins.

Both are fitted on the training split only, in seconds: sparse features are built once, not
re-read per epoch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from lstm_models.data.splits import TextSplits

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
ALPHA = 1.0  # the counts' smoothing
TOKENS = r"(?u)\b\w+\b|[^\w\s]"  # words of any length and punctuation marks ("!" and "not" matter)


def bow_predictions(data: TextSplits, max_tokens: int | None, seed: int) -> tuple[np.ndarray, str]:
    """The predicted class of every test text by tf-idf + logistic regression, and its note."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorize = TfidfVectorizer(max_features=max_tokens, token_pattern=TOKENS, lowercase=True)
    train, val, test = _features(vectorize, data)
    labels = data.part("train")[1]

    def fit(c: float):
        return LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(train, labels)

    model, c = _by_val(fit, lambda m: m.predict(val), data.part("val")[1])
    return model.predict(test).astype("int64"), (f"tf-idf over {max_tokens or 'all'} tokens + logistic "
                                                  f"regression, C={c:g} by val")


def nbsvm_predictions(data: TextSplits, seed: int) -> tuple[np.ndarray, str]:
    """The predicted class of every test text by NBSVM, and a note naming the C chosen on val."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorize = CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=TOKENS, lowercase=True)
    train, val, test = _features(vectorize, data)
    labels = data.part("train")[1]
    classes = len(data.class_names)
    ones = [1] if classes == 2 else list(range(classes))  # binary: one model, for class 1
    ratios = [_ratio(train, labels == c) for c in ones]

    def fit(c: float):
        return [_fit(train.multiply(r).tocsr(), labels == k, c, seed) for k, r in zip(ones, ratios)]

    models, c = _by_val(fit, lambda m: _predict(m, ratios, val, classes), data.part("val")[1])
    return _predict(models, ratios, test, classes), (f"NB log-count ratios on binarized uni+bigrams "
                                                     f"({train.shape[1]:,}) + logistic regression, C={c:g} by val")


def _features(vectorize, data: TextSplits) -> list:
    """The train, val and test texts as sparse rows, the vocabulary learnt from train alone."""
    train = vectorize.fit_transform(data.part("train")[0].astype(str)).tocsr()
    return [train] + [vectorize.transform(data.part(p)[0].astype(str)).tocsr() for p in ("val", "test")]


def _by_val(fit: Callable, predict: Callable, val_labels: np.ndarray) -> tuple[object, float]:
    """The model of the C in `C_GRID` most accurate on val (ties: the smallest C), and that C."""
    best = None
    for c in C_GRID:
        model = fit(c)
        accuracy = float(np.mean(predict(model) == val_labels))
        if best is None or accuracy > best[0]:
            best = (accuracy, model, c)
    return best[1], best[2]


def _ratio(counts, in_class: np.ndarray) -> np.ndarray:
    p = ALPHA + np.asarray(counts[in_class].sum(axis=0)).ravel()
    q = ALPHA + np.asarray(counts[~in_class].sum(axis=0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum()))


def _fit(features, target: np.ndarray, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=seed).fit(features, target)


def _predict(models, ratios, counts, classes: int) -> np.ndarray:
    scores = np.stack([m.decision_function(counts.multiply(r).tocsr()) for m, r in zip(models, ratios)], axis=1)
    if classes == 2:
        return (scores[:, 0] > 0).astype("int64")
    return np.argmax(scores, axis=1)
