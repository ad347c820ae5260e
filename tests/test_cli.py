"""The CLI as a user runs it: a subprocess, a real store (the end-to-end sweeps: test_serving.py)."""

import pytest

from conftest import CACHE, run_cli, tiny_series_spec, write_spec

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow


def _sweep(tmp_path, spec, *extra):
    path = write_spec(tmp_path, spec)
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    done = run_cli("sweep", str(path), "--tracking-uri", uri, "--output", str(tmp_path / "exports"),
                   "--cache-dir", str(CACHE), *extra, cwd=tmp_path)
    return done, uri


def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path):
    spec = tiny_series_spec()
    spec["search"]["cells"] = ["lstm", "transformer"]
    done, _ = _sweep(tmp_path, spec)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"lstm-models: error: {tmp_path / 'spec.yaml'}: search.cells[1] must be one of "
                                   "lstm, gru, rnn. Got 'transformer' instead.")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "exports").exists()
