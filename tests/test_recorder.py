"""The trial recorder and the limits, without a tuner: runs, state records, progress lines, stops."""

import json

import pytest
from mlflow.tracking import MlflowClient

from lstm_models.errors import SearchDone, SweepFailed
from lstm_models.models.build import ModelSpec
from lstm_models.search.limits import Limits
from lstm_models.search.recorder import INTERRUPTED, TrialRecorder, better
from lstm_models.search.state import STATE_FILE, SweepState
from lstm_models.tracking.mlflow_store import MLflowTracker

SPEC = ModelSpec(task="forecasting", cell="gru", units=(4,), lookback=6, batch_size=8)
TRACEBACK = ('Traceback (most recent call last):\n  File "x.py", line 1, in fit\n    boom()\n'
             'RuntimeError: boom\n')


@pytest.fixture
def setup(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MLflowTracker(uri)
    parent = tracker.start_sweep("rec", "sweep rec", {"name": "rec"}, {})
    state = SweepState(name="rec", parent_run_id=parent, tracking_uri=uri, spec={"tuner": {"max_trials": 3}})
    lines, ended = [], []
    recorder = TrialRecorder("val_rmse", "min", 3, tracker, state, tmp_path / "runs", lines.append, ended.append)
    return recorder, MlflowClient(uri), lines, ended, tmp_path / "runs" / STATE_FILE


def test_a_finished_trial_has_its_run_record_and_lines(setup):
    recorder, client, lines, ended, state_file = setup
    result = recorder.begin("00", SPEC, {"tuner/epochs": 2}, note=" (note)")
    assert json.loads(state_file.read_text())["trials"][result.run_id]["status"] == "RUNNING"
    recorder.current.n_params = 123
    recorder.epoch(0, 2, {"loss": 4.0, "val_rmse": 3.0}, seconds=2.0)
    recorder.epoch(1, 2, {"loss": 2.0, "val_rmse": 1.5}, seconds=4.0)
    recorder.end(1.5, 1)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "trial-01 gru 1x4 lb6 do0"
    assert run.data.tags["status"] == "FINISHED" and run.data.tags["cell"] == "gru"
    assert run.data.params["tuner/epochs"] == "2" and run.data.params["units"] == "4"
    assert run.data.metrics["final_val_rmse"] == 1.5 and run.data.metrics["param_count"] == 123
    assert run.data.metrics["seconds_per_epoch"] == 3.0 and run.data.metrics["best_epoch"] == 1
    assert [(m.step, m.value) for m in client.get_metric_history(result.run_id, "val_rmse")] == [(0, 3.0), (1, 1.5)]
    record = json.loads(state_file.read_text())["trials"][result.run_id]
    assert (record["status"], record["objective"], record["epochs"]) == ("FINISHED", 1.5, 2)
    assert lines[0].splitlines()[0] == "[trial 1/3] gru 1x4 lb6 do0 (note)"
    assert lines[1] == "    epoch 1/2  loss 4.0000  val_rmse 3.0000  (2.0s)"
    assert lines[-1] == "    -> FINISHED: val_rmse 1.5000; best so far 1.5000 (gru)"
    assert ended == [result] and recorder.best is result and recorder.failures_in_a_row == 0


def test_a_failed_trial_keeps_its_error_line_and_traceback(setup, tmp_path):
    recorder, client, lines, ended, state_file = setup
    result = recorder.begin("00", SPEC, {})
    recorder.end(None, None, TRACEBACK)
    run = client.get_run(result.run_id)
    assert run.info.status == "FAILED" and run.data.tags["error"] == "RuntimeError: boom"
    path = client.download_artifacts(result.run_id, "traceback.txt", str(tmp_path))
    assert open(path).read() == TRACEBACK
    assert recorder.failures_in_a_row == 1 and recorder.best is None
    assert lines[-1] == "    -> FAILED: RuntimeError: boom; no finished trial yet"
    second = recorder.begin("01", SPEC, {})
    recorder.end(float("nan"), 0)  # a NaN objective is a failure, never a best
    assert second.status == "FAILED" and second.error == "the objective was not finite (NaN loss?)"
    assert recorder.failures_in_a_row == 2


def test_abort_closes_the_running_trial_as_killed(setup):
    recorder, client, lines, ended, state_file = setup
    result = recorder.begin("00", SPEC, {})
    recorder.abort("KILLED")
    run = client.get_run(result.run_id)
    assert (run.info.status, run.data.tags["error"], run.data.tags["lost"]) == ("KILLED", INTERRUPTED, "true")
    assert result.lost and recorder.counted() == 0  # lost with its process: --resume runs it again
    assert json.loads(state_file.read_text())["trials"][result.run_id]["status"] == "KILLED"
    assert ended == [] and recorder.current is None
    recorder.abort("FAILED")  # nothing running: nothing to do
    assert client.get_run(result.run_id).info.status == "KILLED"


def test_a_trial_whose_closing_write_fails_is_left_for_abort_to_close(setup, tmp_path):
    """A write of `end` that fails (here its checkpoint is missing) leaves the trial current, so the
    abort that follows closes its run: no run is left RUNNING in the store."""
    recorder, client, lines, ended, state_file = setup
    result = recorder.begin("00", SPEC, {})
    recorder.epoch(0, 1, {"loss": 4.0, "val_rmse": 3.0}, seconds=2.0)
    with pytest.raises(Exception, match="missing.weights.h5"):
        recorder.end(3.0, 0, checkpoint=str(tmp_path / "missing.weights.h5"))
    assert recorder.current is result and client.get_run(result.run_id).info.status == "RUNNING"
    recorder.abort("KILLED")
    run = client.get_run(result.run_id)
    assert (run.info.status, run.data.tags["error"], run.data.tags["lost"]) == ("KILLED", INTERRUPTED, "true")
    assert run.data.metrics["val_rmse"] == 3.0 and recorder.current is None and ended == []
    record = json.loads(state_file.read_text())["trials"][result.run_id]
    assert (record["status"], record["lost"]) == ("KILLED", True)


def test_epochs_reach_the_store_together_unless_they_are_long_and_all_before_the_trial_ends(setup):
    recorder, client, lines, ended, state_file = setup

    def history(result):
        return [(m.step, m.value) for m in client.get_metric_history(result.run_id, "val_rmse")]

    recorder.pending.flush_seconds = 3600.0  # short epochs: written together
    result = recorder.begin("00", SPEC, {})
    recorder.epoch(0, 3, {"val_rmse": 3.0}, seconds=0.1)
    recorder.epoch(1, 3, {"val_rmse": 2.0}, seconds=0.1)
    assert history(result) == [] and lines[-1] == "    epoch 2/3  val_rmse 2.0000  (0.1s)"  # the lines come at once
    recorder.pending.flush()  # EpochLog's, when the fit ends
    assert history(result) == [(0, 3.0), (1, 2.0)]
    recorder.epoch(2, 3, {"val_rmse": 1.0}, seconds=0.1)
    recorder.end(1.0, 2)
    assert history(result) == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert client.get_run(result.run_id).data.metrics["final_val_rmse"] == 1.0

    recorder.pending.flush_seconds = 0.0  # long epochs: each written as it ends
    second = recorder.begin("01", SPEC, {})
    recorder.epoch(0, 2, {"val_rmse": 4.0}, seconds=9.0)
    assert history(second) == [(0, 4.0)]

    recorder.pending.flush_seconds = 3600.0
    recorder.epoch(1, 2, {"val_rmse": 3.5}, seconds=0.1)
    recorder.abort("KILLED")  # a signal: the epochs it trained are in its run
    assert history(second) == [(0, 4.0), (1, 3.5)]


def test_better_never_prefers_nan_or_none():
    assert better("min", 1.0, 2.0) and not better("min", 2.0, 1.0) and better("max", 2.0, 1.0)
    assert better("min", 5.0, None) and not better("min", None, 1.0) and not better("min", float("nan"), 1.0)


def test_limits_stop_at_max_trials_at_the_budget_and_after_three_failures(setup):
    recorder, *_ = setup
    now = [0.0]
    lines = []
    limits = Limits("rec", 3, 60.0, lambda: now[0], lines.append)
    limits.before_trial(recorder)  # nothing run, no time spent
    recorder.begin("00", SPEC, {})
    recorder.end(1.0, 0)
    now[0] = 61.0
    with pytest.raises(SearchDone):
        limits.before_trial(recorder)
    assert limits.stop_reason == "time budget 1m spent (61s) after 1 of 3 trials"
    assert lines == ["time budget 1m spent (61s) after 1 of 3 trials: no new trial; the best model so far is exported"]
    for trial_id in ("01", "02"):
        recorder.begin(trial_id, SPEC, {})
        recorder.end(None, None, TRACEBACK)
    limits.after_trial(recorder)  # two in a row: go on
    no_budget = Limits("rec", 3, None, lambda: 1e9, lines.append)
    with pytest.raises(SearchDone):  # three trials ran
        no_budget.before_trial(recorder)
    recorder.max_trials = 5
    recorder.begin("03", SPEC, {})
    recorder.end(None, None, TRACEBACK)
    with pytest.raises(SweepFailed) as info:
        Limits("rec", 5, None, lambda: 0.0, lines.append).after_trial(recorder)
    assert str(info.value) == ("sweep rec: stopped after 3 failed trials in a row; last error: RuntimeError: boom. "
                               "The 1 finished trial(s) are kept; fix the cause and resume")
    with pytest.raises(SweepFailed) as info:  # a worker's (the chief goes on with the others)
        Limits("rec", 5, None, lambda: 0.0, lines.append, worker="worker-2").after_trial(recorder)
    assert str(info.value) == ("worker worker-2 of sweep rec: stopped after 3 failed trials in a row; last error: "
                               "RuntimeError: boom. The 1 finished trial(s) are kept; fix the cause and start this "
                               "worker again")
