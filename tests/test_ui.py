"""`lstm-models ui`: one link per experiment to its runs table, printed before the UI starts. No training."""

from __future__ import annotations

import pytest

from lstm_models.tracking.links import experiments, runs_links
from lstm_models.tracking.mlflow_store import MLflowTracker

from conftest import run_cli


def _store(tmp_path, *names: str) -> str:
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    for name in names:
        MLflowTracker(uri).start_sweep(name, f"sweep {name}", {"units": 8}, {"task": "test"})
    return uri


def test_experiments_by_name_without_the_empty_default(tmp_path):
    tracker = MLflowTracker(_store(tmp_path, "sunspots", "sentiment"))

    found = experiments(tracker)

    assert found == [("2", "sentiment"), ("1", "sunspots")]
    assert runs_links(found, "http://127.0.0.1:5000") == [
        "sentiment: http://127.0.0.1:5000/#/experiments/2/runs",
        "sunspots: http://127.0.0.1:5000/#/experiments/1/runs",
    ]


def test_default_is_listed_once_it_holds_a_run(tmp_path):
    tracker = MLflowTracker(_store(tmp_path, "sentiment"))
    tracker.client.create_run("0")

    assert experiments(tracker) == [("0", "Default"), ("1", "sentiment")]


def test_links_only_prints_one_line_per_experiment_and_exits_0(tmp_path):
    uri = _store(tmp_path, "sentiment", "sunspots")

    done = run_cli("ui", "--tracking-uri", uri, "--port", "5123", "--links-only", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["sentiment: http://127.0.0.1:5123/#/experiments/1/runs",
                                        "sunspots: http://127.0.0.1:5123/#/experiments/2/runs"]


def test_a_store_not_yet_created_is_reported_and_not_created(tmp_path):
    uri = f"sqlite:///{tmp_path}/none/mlflow.db"

    done = run_cli("ui", "--tracking-uri", uri, "--links-only", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"no experiments in {uri} yet: lstm-models sweep SPEC --tracking-uri {uri} "
                           "tracks one there\n")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("flags, message", [
    (["--host", "0.0.0.0"], "--host 0.0.0.0: the MLflow UI has no authentication, so it listens on loopback only; "
                            "for other machines run lstm-models tracking-server --auth"),
    (["--tracking-uri", "none"], "--tracking-uri none: nothing is tracked, so there is no UI to open"),
    (["--port", "70000"], "--port must be in [1, 65535]. Got 70000 instead."),
    (["--host", "::1"], "--host ::1: an IPv6 address; give an IPv4 address (127.0.0.1 for this machine only) or a "
                        "host name"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, flags, message):
    done = run_cli("ui", "--links-only", *flags, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr == f"lstm-models: error: {message}\n"
    assert done.stdout == ""
