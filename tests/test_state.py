"""A sweep's folder on disk: its lock, and what --fresh deletes."""

import os

import pytest

from conftest import CACHE, run_cli, tiny_series_spec, write_spec
from lstm_models.errors import ConfigError
from lstm_models.search.state import LOCK_FILE, STATE_FILE, TUNER_PROJECT, SweepLock, discard, is_locked


def _sweep_folder(folder):
    (folder / TUNER_PROJECT / "trial_0").mkdir(parents=True)
    (folder / TUNER_PROJECT / "trial_0" / "checkpoint.weights.h5").write_bytes(b"w")
    (folder / STATE_FILE).write_text("{}", encoding="utf-8")


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with SweepLock(tmp_path):
        with pytest.raises(ConfigError) as err:
            SweepLock(tmp_path).acquire()
        assert str(err.value) == (f"{tmp_path}: this sweep is running right now (process {os.getpid()}); "
                                  "wait for it or stop it first")
        assert is_locked(tmp_path)
    assert not is_locked(tmp_path)
    SweepLock(tmp_path).acquire().release()  # free again once released


def test_discard_deletes_the_sweep_but_keeps_the_lock_its_caller_holds(tmp_path):
    _sweep_folder(tmp_path)
    with SweepLock(tmp_path) as lock:
        inode = os.stat(lock.path).st_ino
        discard(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]
        assert os.stat(tmp_path / LOCK_FILE).st_ino == inode  # the very file this process has locked
        with pytest.raises(ConfigError, match="this sweep is running right now"):
            SweepLock(tmp_path).acquire()  # so no other process can take the sweep meanwhile


@pytest.mark.slow
def test_fresh_on_a_running_sweep_exits_2_and_deletes_nothing(tmp_path):
    write_spec(tmp_path, tiny_series_spec())
    folder = tmp_path / "runs" / "tiny-sunspots"
    _sweep_folder(folder)
    with SweepLock(folder):
        proc = run_cli("sweep", "spec.yaml", "--fresh", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow/mlflow.db",
                       "--output", "exports", "--cache-dir", str(CACHE), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"lstm-models: error: runs/tiny-sunspots: this sweep is running right now (process {os.getpid()}); "
        "wait for it or stop it first")
    assert "Traceback" not in proc.stderr
    assert (folder / STATE_FILE).exists() and (folder / TUNER_PROJECT / "trial_0" / "checkpoint.weights.h5").exists()
    assert not (tmp_path / "exports").exists() and not (tmp_path / "mlflow").exists()
