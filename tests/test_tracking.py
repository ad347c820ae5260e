"""Tracking against a real SQLite MLflow store in tmp_path."""

import math

import pytest
from mlflow.tracking import MlflowClient

from lstm_models.tracking import report
from lstm_models.spec.sweep import parse_sweep
from lstm_models.errors import ConfigError
from lstm_models.search.run import Hooks, SweepPaths, run_sweep
from lstm_models.tracking.mlflow_store import MLflowTracker
from lstm_models.tracking.tracker import NullTracker, flatten

from conftest import toy_series_splits, toy_text_splits

pytestmark = pytest.mark.slow  # every test here trains or runs the CLI with TensorFlow


def _uri(tmp_path):
    return f"sqlite:///{tmp_path}/store/mlflow.db"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}


def test_parent_and_nested_runs_with_params_and_per_epoch_metrics(tmp_path):
    tracker = MLflowTracker(_uri(tmp_path))
    tracker.check()
    parent = tracker.start_sweep("exp", "sweep exp", {"tuner.kind": "random"}, {"task": "forecasting"})
    child = tracker.start_trial("trial-01 gru 1x8 do0", {"cell": "gru", "units": 8}, {"cell": "gru"})
    for epoch, loss in enumerate([0.9, 0.5, 0.3]):
        tracker.log_metrics(child, {"loss": loss, "val_loss": loss + 0.1}, step=epoch)
    tracker.log_metrics(child, {"nan_is_skipped": math.nan})
    tracker.end_run(child, "FINISHED")
    tracker.end_run(parent, "FINISHED")

    client = MlflowClient(_uri(tmp_path))
    exp = client.get_experiment_by_name("exp")
    assert exp.artifact_location == (tmp_path / "store" / "artifacts" / "exp").as_uri()
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"sweep exp", "trial-01 gru 1x8 do0"}
    trial = runs["trial-01 gru 1x8 do0"]
    assert trial.data.tags["mlflow.parentRunId"] == parent
    assert trial.data.params == {"cell": "gru", "units": "8"}
    assert trial.info.status == "FINISHED"
    history = client.get_metric_history(child, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.3)]
    assert "nan_is_skipped" not in trial.data.metrics


def test_unreachable_store_fails_before_training():
    tracker = MLflowTracker("http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"tracking URI http://127.0.0.1:9: cannot reach the MLflow server"):
        tracker.check()


def _tiny_spec(task, **search):
    kind = {"classification": "sentiment", "forecasting": "statsmodels"}[task]
    dataset = {"kind": kind, **({"lookback": [3, 5]} if task == "forecasting" else {})}
    return parse_sweep({"name": f"t-{task}", "task": task, "dataset": dataset,
                        "search": {"units": [4], "depth": {"min": 1, "max": 2}, "batch_size": 32, **search},
                        "tuner": {"kind": "random", "max_trials": 3, "max_epochs": 2, "seed": 3}})


def test_sweep_records_every_trial(tmp_path, seed):
    spec = _tiny_spec("forecasting", cells=["gru", "rnn"])
    tracker = MLflowTracker(_uri(tmp_path))
    result = run_sweep(spec, toy_series_splits(), tracker, SweepPaths(tmp_path / "exports"), hooks=Hooks(log=lambda _: None))

    client = MlflowClient(_uri(tmp_path))
    exp = client.get_experiment_by_name("t-forecasting")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED" and len(children) == 3
    assert parent[0].data.params["tuner.max_trials"] == "3"
    assert parent[0].data.tags["dataset"] == "statsmodels" and parent[0].data.tags["tuner"] == "random"
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.info.run_name.startswith("trial-0")
        params = child.data.params
        assert {"cell", "units", "depth", "dropout", "learning_rate", "lookback"} <= set(params)
        assert ("units_2" in params) == (params["depth"] == "2")
        assert "unit_forget_bias" not in params  # no LSTM in this space
        epochs = [m.step for m in client.get_metric_history(child.info.run_id, "val_rmse")]
        assert epochs == list(range(len(epochs))) and 1 <= len(epochs) <= 2
        assert child.data.metrics["param_count"] > 0
    metrics = parent[0].data.metrics
    for cell in result.best_per_cell:
        assert metrics[f"best_val_rmse_{cell}"] == pytest.approx(result.best_per_cell[cell].objective)
    assert metrics["test_rmse_best"] == pytest.approx(result.best.test_metrics["rmse"])
    # Baselines on the same 20 test windows, beside the exported model.
    for method in ("naive", "seasonal_naive", "drift", "arima", "best"):
        for name in ("rmse", "mae", "smape", "mase"):
            assert metrics[f"test_{name}_{method}"] == pytest.approx(result.baselines.scores[method][name], rel=1e-4)
    assert result.baselines.windows == 20
    assert parent[0].data.tags["gaps_filled"] == "0" and parent[0].data.tags["season"] == "1"
    board = report.format_leaderboard(result).splitlines()
    assert "Baselines on the same 20 test windows:" in board
    assert board[-1].startswith(f"The best recurrent model ({result.best.spec.cell}, test rmse ")
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"leaderboard.csv", "objective_per_trial.png", "spec.yaml"} <= artifacts
    csv_text = (tmp_path / "dl").mkdir() or client.download_artifacts(result.parent_run_id, "leaderboard.csv", str(tmp_path / "dl"))
    rows = open(csv_text, encoding="utf-8").read().splitlines()
    assert len(rows) == 4 and rows[0].startswith("trial,cell,status,val_rmse")
    versions = client.search_model_versions("name='t-forecasting'")
    assert len(versions) == 1 and versions[0].run_id == result.best.run_id


def test_best_per_cell_and_test_evaluated_once_per_cell(tmp_path, seed):
    spec = _tiny_spec("classification", cells=["lstm"], embedding_dim=4)
    result = run_sweep(spec, toy_text_splits(), NullTracker(), SweepPaths(tmp_path / "exports"), hooks=Hooks(log=lambda _: None))
    assert set(result.best_per_cell) == {"lstm"}
    assert result.best is result.best_per_cell["lstm"]
    finished = [t for t in result.trials if t.status == "FINISHED"]
    assert result.best.objective == max(t.objective for t in finished)
    assert [bool(t.test_metrics) for t in result.trials].count(True) == 1
    assert 0.0 <= result.best.test_metrics["accuracy"] <= 1.0
    scores = result.baselines.scores
    assert set(scores) == {"best", "nbsvm", "bow", "majority"} and scores["majority"] == {"accuracy": 0.5}
    assert scores["best"]["accuracy"] == pytest.approx(result.best.test_metrics["accuracy"])


def test_verdict_runs_are_not_trials_but_a_fresh_sweep_closes_those_left_running(tmp_path):
    from lstm_models.search.resume import close_abandoned
    from lstm_models.search.state import SweepState

    tracker = MLflowTracker(_uri(tmp_path))
    parent = tracker.start_sweep("exp", "sweep exp", {}, {})
    trial = tracker.start_trial("trial-01 gru 1x8 do0", {}, {"trial_id": "0"})
    tracker.end_run(trial, "FINISHED")
    seed_run = tracker.start_trial("verdict seeds gru seed 10042", {}, {"verdict": "true"})  # its process was killed
    assert [r["run_id"] for r in tracker.trial_runs(parent)] == [trial]
    assert {r["run_id"] for r in tracker.trial_runs(parent, verdict=True)} == {trial, seed_run}
    assert tracker.running_trials(parent) == [seed_run]
    close_abandoned(SweepState("exp", parent, tracker.uri, {"tuner": {"max_trials": 2}}), tracker, lambda line: None)
    run = MlflowClient(_uri(tmp_path)).get_run(seed_run)
    assert run.info.status == "FAILED" and run.data.tags["error"].startswith("abandoned: replaced by a fresh sweep")
    assert tracker.run_status(parent) == "FAILED"


def _mlflow_error(cause: BaseException):
    """What MLflow's REST client raises for ``cause``: its own exception, raised while handling it."""
    from mlflow.exceptions import MlflowException

    try:
        try:
            raise cause
        except Exception as e:
            raise MlflowException(f"API request to http://127.0.0.1:5077/api/2.0/mlflow/runs/get failed with exception {e}")
    except MlflowException as raised:
        return raised


def test_a_store_link_is_lost_on_a_transport_failure_only_and_then_fails_at_once():
    import requests

    from lstm_models.errors import TrackingLost
    from lstm_models.tracking.mlflow_client import StoreLink

    link = StoreLink("http://127.0.0.1:5077")
    not_found = requests.exceptions.HTTPError("404 Client Error: Not Found for url: http://127.0.0.1:5077/x")
    for error in (_mlflow_error(not_found), ValueError("a bad filter")):  # an answer, or our own mistake
        with pytest.raises(type(error)):
            with link.calling():
                raise error
    assert link.lost is None
    refused = requests.exceptions.ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=5077): Max retries exceeded with url: /api/2.0/mlflow/runs/get "
        "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f0>: Failed to establish a "
        "new connection: [Errno 111] Connection refused'))")
    with pytest.raises(TrackingLost, match=r"^tracking server http://127.0.0.1:5077 stopped answering "
                                           r"\(Connection refused\)$"):
        with link.calling():
            raise _mlflow_error(refused)
    ran = []
    with pytest.raises(TrackingLost, match="Connection refused"):
        with link.calling():
            ran.append("the call")  # not made: the server is known to be gone
    assert ran == []
    busy = requests.exceptions.RetryError("HTTPConnectionPool(host='h', port=1): Max retries exceeded with url: /x "
                                          "(Caused by ResponseError('too many 503 error responses'))")
    with pytest.raises(TrackingLost, match=r"\(too many 503 error responses\)$"):
        with StoreLink("http://h:1").calling():
            raise _mlflow_error(busy)
