"""The shapes a loader returns: labelled texts, one series split by time, or independent sequences."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from lstm_models.errors import DataError

if TYPE_CHECKING:
    from lstm_models.data.options import DataSpec

PARTS = ("train", "val", "test")
VARIANCE_FLOOR = 1e-12  # a constant feature's variance, for normalising by it


@dataclass(frozen=True)
class TextSplits:
    """Labelled texts in three disjoint parts; labels index into `class_names`."""

    name: str
    texts: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    class_names: tuple[str, ...]
    task: str = field(default="classification", init=False)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The texts and integer labels of ``train``, ``val`` or ``test``."""
        return self.texts[name], self.labels[name]

    def sizes(self) -> dict[str, int]:
        return {p: len(self.labels[p]) for p in PARTS}

    def digest(self, part: str | None = None) -> str:
        """A fingerprint of one part's texts and labels (every part's when None)."""
        parts = [part] if part else PARTS
        return fingerprint(self.class_names, *(x for p in parts for x in (self.texts[p], self.labels[p])))

    def schema(self) -> list[tuple[str, str]]:
        """The columns of a row: (name, MLflow type)."""
        return [("text", "string"), ("label", "long")]


@dataclass(frozen=True)
class SeriesSplits:
    """One (multivariate) series; the target is column 0. Split by time, never shuffled.

    Windows are made per lookback: the target block of a window starts at time ``t`` and is
    ``horizon`` long; its inputs are the ``lookback`` rows before ``t``. A window belongs to the
    part its whole target block lies in, so the test targets are the same for every lookback.
    """

    name: str
    values: np.ndarray  # (time, features) float32, raw units
    columns: tuple[str, ...]
    val_start: int
    test_start: int
    horizon: int
    index: tuple[str, ...] = ()
    season: int = 1  # steps per season: seasonal naive and MASE use it (1 = none)
    gaps_filled: int = 0  # missing values filled (or rows dropped, see `fill`) when loading
    fill: str = "interpolate"
    source: str = ""  # the file it came from, for messages
    task: str = field(default="forecasting", init=False)

    def bounds(self, part: str) -> tuple[int, int]:
        """First and last target start ``t`` (inclusive) of a part."""
        ends = {"train": (0, self.val_start), "val": (self.val_start, self.test_start),
                "test": (self.test_start, len(self.values))}
        lo, hi = ends[part]
        return lo, hi - self.horizon

    def starts(self, part: str, lookback: int) -> np.ndarray:
        """The target start ``t`` of every window of one part, in time order."""
        lo, hi = self.bounds(part)
        lo = max(lo, lookback)
        if hi < lo:
            raise DataError(
                f"{self.name}: the {part} split has no window of lookback {lookback} + horizon "
                f"{self.horizon} (series of {len(self.values)} steps, val starts at {self.val_start}, "
                f"test at {self.test_start}); lower lookback or the split fractions"
            )
        return np.arange(lo, hi + 1)

    def windows(self, part: str, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs ``(n, lookback, features)`` and targets ``(n, horizon)`` of one part."""
        starts = self.starts(part, lookback)
        x = np.stack([self.values[t - lookback:t] for t in starts])
        y = np.stack([self.values[t:t + self.horizon, 0] for t in starts])
        return x.astype("float32"), y.astype("float32")

    def train_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance per feature, from the training part only."""
        train = self.values[: self.val_start]
        return train.mean(axis=0), np.maximum(train.var(axis=0), VARIANCE_FLOOR)

    def step_std(self) -> np.ndarray:
        """The standard deviation of each feature's one-step changes, from the training part only."""
        return np.maximum(np.diff(self.values[: self.val_start].astype("float64"), axis=0).std(axis=0), 1e-6)

    def sizes(self) -> dict[str, int]:
        return {p: self.bounds(p)[1] - self.bounds(p)[0] + 1 for p in PARTS}

    def digest(self, part: str | None = None) -> str:
        """A fingerprint of one part's values (the whole series and its split points when None)."""
        if part is None:
            return fingerprint(self.columns, self.values, self.val_start, self.test_start, self.horizon)
        lo, hi = self.bounds(part)
        return fingerprint(self.columns, self.values[lo:hi + self.horizon], self.horizon)

    def schema(self) -> list[tuple[str, str]]:
        return [(str(c), "double") for c in self.columns]

    def date_range(self) -> tuple[str, str]:
        """The first and last time label ('' when the series has none)."""
        return (self.index[0], self.index[-1]) if self.index else ("", "")


@dataclass(frozen=True)
class SequenceSplits:
    """Independent sequences of one length, each with one target row (e.g. the adding problem).

    It answers what the sweep asks of a forecasting dataset: ``windows(part, lookback)`` (the
    whole sequences; ``lookback`` must be their length), ``sizes()``, ``horizon``, ``columns``,
    ``values`` (the training steps, one row per step) and ``train_stats()``.
    """

    name: str
    x: dict[str, np.ndarray]  # part -> (n, length, features) float32
    y: dict[str, np.ndarray]  # part -> (n, horizon) float32
    columns: tuple[str, ...]
    horizon: int = 1
    task: str = field(default="forecasting", init=False)

    @property
    def length(self) -> int:
        return int(self.x["train"].shape[1])

    @property
    def values(self) -> np.ndarray:
        """Every training step, ``(n * length, features)``."""
        return self.x["train"].reshape(-1, self.x["train"].shape[2])

    def windows(self, part: str, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs ``(n, length, features)`` and targets ``(n, horizon)`` of one part."""
        if lookback != self.length:
            raise DataError(f"{self.name}: sequences are {self.length} steps long; lookback {lookback} "
                            f"cannot cut them (a model must read the whole sequence)")
        return self.x[part], self.y[part]

    def train_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance per feature, from the training part only."""
        return self.values.mean(axis=0), np.maximum(self.values.var(axis=0), VARIANCE_FLOOR)

    def step_std(self) -> np.ndarray:
        """The standard deviation of each feature's one-step changes within the training sequences."""
        changes = np.diff(self.x["train"].astype("float64"), axis=1)
        return np.maximum(changes.reshape(-1, changes.shape[-1]).std(axis=0), 1e-6)

    def sizes(self) -> dict[str, int]:
        return {p: len(self.y[p]) for p in PARTS}

    def digest(self, part: str | None = None) -> str:
        """A fingerprint of one part's sequences and targets (every part's when None)."""
        return fingerprint(self.columns, *(a[p] for p in ([part] if part else PARTS) for a in (self.x, self.y)))

    def schema(self) -> list[tuple[str, str]]:
        return [(str(c), "double") for c in self.columns]


def dataset_record(data, source: str) -> dict:
    """What the tracking store records of a sweep's data: name, source, digests, schema, split sizes.

    ``test_digest`` tells whether two sweeps scored their models on the same test examples.
    """
    return {"name": data.name, "source": source, "digest": data.digest(), "test_digest": data.digest("test"),
            "schema": data.schema(), "sizes": data.sizes()}


def fingerprint(*items) -> str:
    """The first 16 hex digits of the sha256 of arrays, strings and numbers, in order."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, np.ndarray) and item.dtype.kind not in "OUS":
            h.update(np.ascontiguousarray(item).tobytes())
        elif isinstance(item, np.ndarray):  # texts
            h.update("\n".join(map(str, item.tolist())).encode("utf-8"))
        else:
            h.update(repr(item).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, np.ndarray]:
    """Indices of a stratified train/val/test split, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {p: [] for p in PARTS}
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        out["test"].append(idx[:n_test])
        out["val"].append(idx[n_test:n_test + n_val])
        out["train"].append(idx[n_test + n_val:])
    return {p: rng.permutation(np.concatenate(v)) for p, v in out.items()}


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Exactly ``size`` indices, in order, each class's share of them in proportion to its count
    (the largest remainders round up), fixed by ``seed``. Rounding each class on its own, 5 texts
    of two even classes were 2 + 2."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * size / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(take - quota, kind="stable")[:size - take.sum()]] += 1
    picked = []
    for cls, k in zip(classes, take):  # the last k of a permutation: what rounding per class chose before
        idx = rng.permutation(np.flatnonzero(labels == cls))
        picked.append(idx[len(idx) - k:])
    return np.sort(np.concatenate(picked))


def time_split(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Where val and test start in a series of ``n`` steps."""
    test_start = n - int(round(n * test_fraction))
    val_start = test_start - int(round(n * val_fraction))
    return val_start, test_start


def text_splits(name: str, texts: np.ndarray, labels: np.ndarray, names: tuple[str, ...], spec: DataSpec,
                test: tuple[np.ndarray, np.ndarray] | None = None) -> TextSplits:
    """Stratified train/val/test parts of labelled texts, after an optional stratified ``limit``.

    With ``test`` given (a dataset that ships its own test part), only train and val are split.
    """
    seed = spec.get("split_seed")
    limit = spec.get("limit")
    if limit and limit < len(labels):
        chosen = stratified_sample(labels, limit, seed)
        texts, labels = texts[chosen], labels[chosen]
    if test is None:
        parts = stratified_split(labels, spec.get("val_fraction"), spec.get("test_fraction"), seed)
        out_texts = {p: texts[i] for p, i in parts.items()}
        out_labels = {p: labels[i] for p, i in parts.items()}
    else:
        parts = stratified_split(labels, spec.get("val_fraction"), 0.0, seed)
        out_texts = {"train": texts[parts["train"]], "val": texts[parts["val"]], "test": test[0]}
        out_labels = {"train": labels[parts["train"]], "val": labels[parts["val"]], "test": test[1]}
    _every_part_holds_texts(out_labels, len(labels), len(names), spec.options.get("path", name))
    return TextSplits(name=name, texts=out_texts, labels=out_labels, class_names=names)


def _every_part_holds_texts(labels: dict[str, np.ndarray], count: int, classes: int, source: str) -> None:
    """Train fits the models, val chooses between them, test scores the winner: none may be empty."""
    empty = [part for part in PARTS if len(labels[part]) == 0]
    if empty:
        raise DataError(f"{source}: the {empty[0]} part would hold no text ({count} texts in {classes} classes, each "
                        "class split by dataset.val_fraction and dataset.test_fraction, rounded); expected at least "
                        "one: give more texts per class or other fractions")
