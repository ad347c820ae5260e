"""Texts users bring: a CSV/TSV of texts and labels, a folder per class, or the Keras IMDB set.

Class names are kept in a known order: numeric labels by value ("0", "1", "2"), other labels
alphabetically. Label ``i`` of the splits is ``class_names[i]``, and the exported model returns
one probability per class in that order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lstm_models.data.options import COLUMN, CSV_RULES, TEXT_RULES, DatasetKind, DataSpec, Rule, check_list
from lstm_models.data.files import check_digest, column_label, find_column, read_table, read_text
from lstm_models.data.splits import TextSplits, text_splits
from lstm_models.errors import DataError

IMDB_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# The digests keras.datasets.imdb checks (the archive is a pickle: checked before it is opened).
IMDB_FILES = {
    "imdb.npz": ("sha256", "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"),
    "imdb_word_index.json": ("md5", "bfafd718b763782e994055a2d397834f"),
}
IMDB_CLASSES = ("negative", "positive")


def class_order(labels) -> tuple[str, ...]:
    """The class names in their known order: by value when every label is an integer."""
    names = sorted({str(v) for v in labels})
    try:
        return tuple(sorted(names, key=lambda v: int(v)))
    except ValueError:
        return tuple(names)


def _encode(labels: list[str], path: Path, column: str, rows: list[int]) -> tuple[np.ndarray, tuple[str, ...]]:
    names = class_order(labels)
    if len(names) < 2:
        raise DataError(f"{path}: column {column} has a single class {names[0]!r} (lines {rows[0]}-{rows[-1]}); "
                        "a classifier needs at least two")
    code = {name: i for i, name in enumerate(names)}
    return np.array([code[v] for v in labels], dtype="int32"), names


def load_text_csv(spec: DataSpec, cache_dir: Path) -> TextSplits:
    """A CSV or TSV file with one text and one label per row."""
    path, header = Path(spec.get("path")), spec.get("header")
    frame = read_table(path, spec.get("sep"), header)
    text_col = find_column(frame, path, spec.get("text_column"), "text_column", header)
    label_col = find_column(frame, path, spec.get("label_column"), "label_column", header)
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    rows = frame.index.tolist()  # lines of the file
    texts = frame[text_col].tolist()
    labels = [v.strip() for v in frame[label_col].tolist()]
    for row, text in zip(rows, texts):
        if not text.strip():
            raise DataError(f"{path}: line {row}, column {column_label(text_col)}: empty text")
    for row, label in zip(rows, labels):
        if not label:
            raise DataError(f"{path}: line {row}, column {column_label(label_col)}: empty label")
    if not header and len(labels) > 2 and labels.count(labels[0]) == 1:
        raise DataError(f"{path}: line {rows[0]}, column {column_label(label_col)}: label {labels[0]!r} appears only "
                        f"on line {rows[0]}, like a header row; set header: true (or give that class more rows)")
    encoded, names = _encode(labels, path, f"{column_label(label_col)}", rows)
    return text_splits(path.name, np.array(texts, dtype=object), encoded, names, spec)


def _read_class_folders(root: Path, classes: list[str] | None) -> tuple[list[str], list[str]]:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    chosen = list(classes) if classes else folders
    for name in chosen:
        if name not in folders:
            raise DataError(f"{root}: no sub-folder {name!r} (dataset.classes); it has {', '.join(folders) or 'none'}")
    texts, labels = [], []
    for name in chosen:
        files = sorted(p for p in (root / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{root / name}: no files in this class folder")
        for file in files:
            text = read_text(file)
            if not text.strip():
                raise DataError(f"{file}: line 1: empty text")
            texts.append(text)
            labels.append(name)
    return texts, labels


def load_text_dir(spec: DataSpec, cache_dir: Path) -> TextSplits:
    """One sub-folder per class, one text per file; with ``train/`` and ``test/`` (aclImdb), test is kept."""
    root = Path(spec.get("path"))
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (dataset.path)")
    classes = spec.get("classes")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    if split and classes is None:  # aclImdb: train/unsup has no labels and no test counterpart
        both = {p.name for p in (root / "test").iterdir() if p.is_dir()}
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and p.name in both)
        if not classes:
            raise DataError(f"{root}: train/ and test/ have no class sub-folder in common; give each the same "
                            "class folders (or dataset.classes)")
    train_root = root / "train" if split else root
    texts, labels = _read_class_folders(train_root, classes)
    names = class_order(labels)
    if len(names) < 2:
        found = f"a single class folder {names[0]!r}" if names else "no class sub-folder"
        raise DataError(f"{train_root}: {found}; a classifier needs at least two (one folder of texts per class)")
    code = {n: i for i, n in enumerate(names)}
    test = None
    if split:
        test_texts, test_labels = _read_class_folders(root / "test", classes)
        test = (np.array(test_texts, dtype=object), np.array([code[v] for v in test_labels], dtype="int32"))
    return text_splits(root.name, np.array(texts, dtype=object), np.array([code[v] for v in labels], dtype="int32"),
                       names, spec, test=test)


def fetch_imdb(cache_dir: Path, fname: str) -> Path:
    """One IMDB file from the cache, downloaded (with a progress bar) when missing, then checked."""
    path = cache_dir / fname
    algorithm, expected = IMDB_FILES[fname]
    if not path.exists():
        import keras

        cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            got = keras.utils.get_file(fname, origin=IMDB_ORIGIN + fname, cache_dir=str(cache_dir.resolve()),
                                       cache_subdir="")
        except Exception as exc:  # urllib raises several kinds; all mean "not downloaded"
            reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{path}: not cached and the download of {IMDB_ORIGIN + fname} failed ({reason}); "
                            f"offline? download {fname} elsewhere and put it at {path}") from None
        if Path(got).resolve() != path.resolve():
            Path(got).replace(path)
    check_digest(path, algorithm, expected)
    return path


def _decode(sequences, words: dict[int, str], num_words: int, maxlen: int) -> np.ndarray:
    out = []
    for seq in sequences:
        kept = [words[w] for w in seq if w in words and (not num_words or w <= num_words)]
        out.append(" ".join(kept[:maxlen] if maxlen else kept))
    return np.array(out, dtype=object)


def load_imdb(spec: DataSpec, cache_dir: Path) -> TextSplits:
    """The 50,000 IMDB reviews of ``keras.datasets.imdb`` as raw text; its 25,000 test reviews stay test.

    ``num_words`` keeps the most frequent words (0: all), ``maxlen`` the first words of a review
    (0: all); unlike ``keras.datasets.imdb.load_data``, longer reviews are cut, not dropped.
    """
    archive = fetch_imdb(cache_dir, "imdb.npz")
    index_file = fetch_imdb(cache_dir, "imdb_word_index.json")
    word_index = json.loads(read_text(index_file))
    words = {int(i): w for w, i in word_index.items()}
    with np.load(archive, allow_pickle=True) as f:  # safe: the sha256 matched above
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    num_words, maxlen = spec.get("num_words"), spec.get("maxlen")
    train = _decode(arrays["x_train"], words, num_words, maxlen)
    test = _decode(arrays["x_test"], words, num_words, maxlen)
    y_train = arrays["y_train"].astype("int32")
    y_test = arrays["y_test"].astype("int32")
    return text_splits("imdb", train, y_train, IMDB_CLASSES, spec, test=(test, y_test))


def _check_classes(options: dict, source: str) -> None:
    if options.get("classes") is not None:
        check_list(options["classes"], str, "a folder name", source, "dataset.classes")


KINDS = {
    "imdb": DatasetKind(load_imdb, {
        "num_words": Rule(int, default=20_000, min=0, max=1_000_000),
        "maxlen": Rule(int, default=400, min=0, max=1_000_000),
        **{k: v for k, v in TEXT_RULES.items() if k != "test_fraction"}}, "classification"),
    "text_csv": DatasetKind(load_text_csv, {
        **CSV_RULES, "text_column": Rule(COLUMN, default="text"), "label_column": Rule(COLUMN, default="label"),
        **TEXT_RULES}, "classification",
        about="your CSV/TSV of texts and labels (path, text_column, label_column)"),
    "text_dir": DatasetKind(load_text_dir, {
        "path": Rule(str, required=True), "classes": Rule(list, default=None), **TEXT_RULES},
        "classification", check=_check_classes,
        about="your folder, one sub-folder of text files per class (aclImdb layout)"),
}
