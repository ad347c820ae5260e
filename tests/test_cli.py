"""The CLI as a user runs it: a subprocess, a real store (the end-to-end sweeps: test_serving.py)."""

import os
import subprocess
import sys

import pytest

from conftest import CACHE, ROOT, run_cli, tiny_series_spec, write_spec

# `run` with a stand-in command: it registers an atexit handler, prints without flushing, and
# holds an object whose finalizer would only run in Python's own finalization.
PROBE = """
import atexit, sys
import lstm_models.cli as cli

class Finalized:
    def __del__(self, open=open, path=sys.argv[1] + ".del"):  # builtins are gone by then
        open(path, "w").close()

held = Finalized()

def command():
    atexit.register(lambda: open(sys.argv[1] + ".atexit", "w").close())
    print("last line", end="")
    if sys.argv[2] == "raise":
        raise RuntimeError("boom")
    return int(sys.argv[2])

cli.main = command
cli.run()
"""


@pytest.mark.parametrize("code", [0, 2])
def test_run_exits_with_the_command_code_after_atexit_without_finalization(tmp_path, code):
    marks = tmp_path / "mark"
    done = subprocess.run([sys.executable, "-c", PROBE, str(marks), str(code)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (code, "last line", "")
    assert (tmp_path / "mark.atexit").exists()  # MLflow's handlers still run
    assert not (tmp_path / "mark.del").exists()  # the interpreter's teardown does not


def test_run_finalizes_as_usual_when_the_command_raises(tmp_path):
    marks = tmp_path / "mark"
    done = subprocess.run([sys.executable, "-c", PROBE, str(marks), "raise"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 1 and done.stdout == "last line"
    assert done.stderr.strip().splitlines()[-1] == "RuntimeError: boom"
    assert (tmp_path / "mark.atexit").exists() and (tmp_path / "mark.del").exists()


def _sweep(tmp_path, spec, *extra):
    path = write_spec(tmp_path, spec)
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    done = run_cli("sweep", str(path), "--tracking-uri", uri, "--output", str(tmp_path / "exports"),
                   "--cache-dir", str(CACHE), *extra, cwd=tmp_path)
    return done, uri


@pytest.mark.slow  # trains or runs the CLI with TensorFlow
def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path):
    spec = tiny_series_spec()
    spec["search"]["cells"] = ["lstm", "transformer"]
    done, _ = _sweep(tmp_path, spec)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"lstm-models: error: {tmp_path / 'spec.yaml'}: search.cells[1] must be one of "
                                   "lstm, gru, rnn. Got 'transformer' instead.")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "exports").exists()
