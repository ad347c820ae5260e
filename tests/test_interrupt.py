"""Interrupts: the Deferral that holds them, one arriving while a trial's end is recorded, and one
that TensorFlow turned into another error."""

import json
import signal

import pytest
from mlflow.tracking import MlflowClient

from conftest import toy_series_splits
from lstm_models.errors import Interrupted
from lstm_models.interrupt import Deferral


class Stop(KeyboardInterrupt):
    """A stand-in for a signal: two of them can be told apart by their argument."""


# --- Deferral: at once outside a held section, at its end inside one ---

def test_an_interrupt_outside_any_held_section_is_raised_at_once():
    guard = Deferral()
    exc = Stop("now")
    with pytest.raises(Stop) as raised:
        guard.interrupt(exc)
    assert raised.value is exc
    guard.enter()
    guard.leave()  # nothing was kept for later


def test_an_interrupt_inside_a_section_is_raised_when_it_leaves():
    guard = Deferral()
    exc = Stop("held")
    guard.enter()
    guard.interrupt(exc)  # returns: the section goes on
    with pytest.raises(Stop) as raised:
        guard.leave()
    assert raised.value is exc
    guard.enter()
    guard.leave()  # raised once, then forgotten


def test_nested_sections_raise_only_when_the_outermost_leaves():
    guard = Deferral()
    exc = Stop("nested")
    guard.enter()
    with guard.hold():
        guard.enter()
        guard.interrupt(exc)
        guard.leave()  # inner: still held by two sections
    # the `with` block left its section without raising: one section is still held
    with pytest.raises(Stop) as raised:
        guard.leave()
    assert raised.value is exc


def test_the_first_pending_interrupt_wins_over_a_second():
    guard = Deferral()
    first, second = Stop("first"), Stop("second")
    with pytest.raises(Stop) as raised:
        with guard.hold():
            guard.interrupt(first)
            guard.interrupt(second)
    assert raised.value is first
    guard.enter()
    guard.leave()  # the second one is not raised later either


def test_hold_drop_forgets_an_interrupt_that_arrived_inside_it():
    guard = Deferral()
    ran = []
    with guard.hold(drop=True):
        guard.interrupt(Stop("dropped"))
        ran.append("rest of the block")
    assert ran == ["rest of the block"]
    guard.enter()
    guard.leave()  # forgotten for good
    with pytest.raises(Stop, match="after"):
        guard.interrupt(Stop("after"))  # and the guard is not left holding


def test_hold_drop_forgets_the_interrupt_even_when_the_block_raises():
    guard = Deferral()
    with pytest.raises(ValueError, match="bookkeeping"):
        with guard.hold(drop=True):
            guard.interrupt(Stop("dropped"))
            raise ValueError("bookkeeping")
    guard.enter()
    guard.leave()


def test_reset_forgets_held_sections_but_keeps_a_pending_interrupt():
    guard = Deferral()
    pending, later = Stop("pending"), Stop("later")
    guard.enter()
    guard.enter()
    guard.interrupt(pending)
    guard.reset()
    with pytest.raises(Stop) as raised:  # no section is held any more: at once
        guard.interrupt(later)
    assert raised.value is later
    with pytest.raises(Stop) as raised:  # the pending one was kept: raised as the next section ends
        with guard.hold():
            pass
    assert raised.value is pending
    guard.enter()
    guard.leave()


def test_unmasking_raises_the_interrupt_that_an_error_escaping_it_stands_for():
    guard = Deferral()
    with pytest.raises(ValueError):  # no interrupt yet: an error is an error
        with guard.unmasking():
            raise ValueError("a real failure")
    stop = Stop("signal")
    with pytest.raises(Stop) as raised:
        with guard.unmasking():
            try:
                guard.interrupt(stop)  # raised at once, inside code that rewords it (as TF's C++ did)
            except Stop:
                raise SystemError("Objects/listobject.c:338: bad argument to internal function") from None
    assert raised.value is stop and isinstance(raised.value.__cause__, SystemError)
    with pytest.raises(Stop) as raised:  # an interrupt deferred, then raised as its section ends, counts too
        with guard.unmasking():
            other = Deferral()
            with pytest.raises(Stop):
                with other.hold():
                    other.interrupt(Stop("pending"))
            raise TypeError("Expected int32, but got None of type 'NoneType'.")
    assert raised.value is stop  # this guard's own interrupt, not another guard's


def test_interrupted_carries_the_signal_and_its_exit_code():
    exc = Interrupted(signal.SIGTERM)
    assert (exc.signum, exc.exit_code, str(exc)) == (15, 143, "SIGTERM")
    assert isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Exception)
    assert Interrupted(signal.SIGINT).exit_code == 130


# --- an interrupt while a trial's end is recorded: oracle, state file and MLflow agree ---

def _spec(max_trials):
    from lstm_models.spec.sweep import parse_sweep

    return parse_sweep({"name": "t", "task": "forecasting", "dataset": {"kind": "statsmodels", "lookback": [3, 5]},
                        "search": {"cells": ["rnn"], "units": [4], "depth": 1, "batch_size": 32},
                        "tuner": {"kind": "random", "max_trials": max_trials, "max_epochs": 1, "seed": 3}})


def _runs(uri):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = {r.info.run_name.split()[0]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return parents, trials


@pytest.mark.slow
def test_an_interrupt_while_a_trial_ends_is_raised_after_all_three_records_agree(tmp_path, seed):
    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.mlflow_store import MLflowTracker

    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    workdir = tmp_path / "runs" / "t"
    paths = SweepPaths(tmp_path / "exports", workdir)
    guard, ended, lines = Deferral(), [], []

    def on_trial(result):  # runs inside the held section that records the trial's end
        ended.append((result.number, result.status))
        if result.number == 1:
            guard.interrupt(Interrupted(signal.SIGTERM))
            ended.append("still running after the interrupt")

    with pytest.raises(Interrupted) as raised:
        run_sweep(_spec(3), toy_series_splits(), MLflowTracker(uri), paths,
                  hooks=Hooks(log=lines.append, guard=guard, on_trial=on_trial))
    assert raised.value.exit_code == 143
    assert ended == [(1, "FINISHED"), "still running after the interrupt"]  # deferred to the section's end
    assert not any(line.startswith("[trial 2/") for line in lines)
    assert lines[-1].startswith("    -> FINISHED: val_rmse ")

    # Keras Tuner: trial 0 COMPLETED, and no second trial was created.
    tuner = workdir / "tuner"
    assert sorted(p.name for p in tuner.glob("trial_*")) == ["trial_0"]
    ktrial = json.loads((tuner / "trial_0" / "trial.json").read_text(encoding="utf-8"))
    assert ktrial["status"] == "COMPLETED"
    score = ktrial["score"]
    assert isinstance(score, float) and score > 0

    # The state file: still searching, trial 1 FINISHED with the oracle's score.
    state = json.loads((workdir / "sweep.json").read_text(encoding="utf-8"))
    assert state["status"] == "searching"
    (record,) = state["trials"].values()
    assert (record["trial_id"], record["lost"]) == ("0", False)
    assert (record["number"], record["status"], record["objective"], record["error"]) == (1, "FINISHED", score, "")
    assert record["best_epoch"] == ktrial["best_step"] == 0

    # MLflow: the trial FINISHED with the same objective, no second trial run, the parent KILLED.
    (parent,), trials = _runs(uri)
    assert list(trials) == ["trial-01"]
    first = trials["trial-01"]
    assert first.info.run_id == record["run_id"] and first.info.status == "FINISHED"
    assert first.data.metrics["final_val_rmse"] == score
    assert first.data.tags["status"] == "FINISHED" and "error" not in first.data.tags
    assert parent.info.run_id == state["parent_run_id"] and parent.info.status == "KILLED"
    assert parent.data.tags["error"] == "SIGTERM"

    # Resume: the finished trial is kept, two more run, none rerun.
    lines.clear()
    result = run_sweep(_spec(3), toy_series_splits(), MLflowTracker(uri), paths, "resume", Hooks(log=lines.append))
    assert (f"resuming sweep t (parent run {parent.info.run_id}): 1 trials kept (1 of 3 counted), 1 finished, "
            "none rerun") in lines
    assert [line.split("]")[0] for line in lines if line.startswith("[trial ")] == ["[trial 2/3", "[trial 3/3"]
    assert [(t.number, t.trial_id, t.status) for t in result.trials] == [
        (1, "0", "FINISHED"), (2, "1", "FINISHED"), (3, "2", "FINISHED")]
    assert (result.trials[0].run_id, result.trials[0].objective) == (first.info.run_id, score)
    assert result.parent_run_id == parent.info.run_id and result.resumed

    (again,), trials = _runs(uri)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags["resumed"] == "1" and "error" not in again.data.tags
    assert {k: r.info.status for k, r in trials.items()} == {
        "trial-01": "FINISHED", "trial-02": "FINISHED", "trial-03": "FINISHED"}
    kept = trials["trial-01"]
    assert (kept.info.run_id, kept.info.end_time, kept.data.metrics["final_val_rmse"]) == (
        first.info.run_id, first.info.end_time, score)
    state = json.loads((workdir / "sweep.json").read_text(encoding="utf-8"))
    assert state["status"] == "finished" and state["trials"][record["run_id"]] == record
    assert sorted(p.name for p in tuner.glob("trial_*")) == ["trial_0", "trial_1", "trial_2"]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["    epoch 1/1", "inside/"])
def test_an_interrupt_that_tensorflow_rewords_still_stops_the_sweep(tmp_path, seed, where):
    """Seen in CI: SIGTERM reached a worker while TF traced its model and came out as a TypeError;
    Keras Tuner recorded a failed trial and the worker trained the next one. ``where``: in a trial's
    epoch, or at the end of the sweep (its inside views)."""
    from lstm_models.search.run import Hooks, SweepPaths, run_sweep
    from lstm_models.tracking.mlflow_store import MLflowTracker

    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    guard, lines = Deferral(), []

    def log(line):
        lines.append(line)
        if line.startswith(where):
            try:
                guard.interrupt(Interrupted(signal.SIGTERM))
            except Interrupted:
                raise SystemError("Objects/listobject.c:338: bad argument to internal function") from None

    (tmp_path / "exports" / "t").mkdir(parents=True)
    (tmp_path / "exports" / "t" / "earlier.txt").write_text("the last finished sweep's export", encoding="utf-8")
    with pytest.raises(Interrupted) as raised:
        run_sweep(_spec(2), toy_series_splits(), MLflowTracker(uri), SweepPaths(tmp_path / "exports", tmp_path / "t"),
                  hooks=Hooks(log=log, guard=guard))
    assert raised.value.exit_code == 143 and isinstance(raised.value.__cause__, SystemError)
    assert sum(line.startswith(where) for line in lines) == 1, lines  # nothing ran on after it
    (parent,), trials = _runs(uri)
    assert (parent.info.status, parent.data.tags["error"]) == ("KILLED", "SIGTERM")
    state = json.loads((tmp_path / "t" / "sweep.json").read_text(encoding="utf-8"))
    records = sorted((r["number"], r["status"], r["lost"]) for r in state["trials"].values())
    if where.startswith("    epoch"):  # the trial is lost, not failed: --resume runs it again
        assert list(trials) == ["trial-01"] and not any(line.startswith("[trial 2/") for line in lines)
        assert (trials["trial-01"].info.status, trials["trial-01"].data.tags["lost"]) == ("KILLED", "true")
        assert records == [(1, "KILLED", True)]
    else:  # both trials ran and are kept; the sweep stopped in its end
        assert {k: r.info.status for k, r in trials.items()} == {"trial-01": "FINISHED", "trial-02": "FINISHED"}
        assert records == [(1, "FINISHED", False), (2, "FINISHED", False)] and state["status"] == "searching"
        assert "inside_error" not in parent.data.tags  # the stop is not reported as a failed view
    # Its export was written whole before the views, but a sweep that did not finish publishes none:
    # the last finished sweep's stays (--resume exports again)
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["t"]
    assert [p.name for p in (tmp_path / "exports" / "t").iterdir()] == ["earlier.txt"]


def test_a_second_interrupt_waits_while_the_first_one_is_cleaned_up():
    """Ctrl-C reaches a chief's workers, then the chief's own SIGTERM: the second must not cut
    short the clean-up that the first one started (closing the seed run it stopped)."""
    guard = Deferral()
    first, second = Stop("SIGINT"), Stop("SIGTERM")
    closed = []
    with pytest.raises(Stop) as raised:
        try:
            guard.interrupt(first)
        except Stop:
            guard.interrupt(second)  # before the clean-up holds the guard: it waits
            guard.reset()
            with guard.hold(drop=True):
                closed.append("run KILLED")
            raise
    assert raised.value is first and closed == ["run KILLED"]
    guard.enter()
    guard.leave()  # dropped with the clean-up


def test_give_up_raises_a_waiting_interrupt_inside_a_held_section_and_nothing_else():
    """A worker's call to a chief that stopped answering: the interrupt that waits for the held
    section to end is raised now; with none waiting, the call goes on waiting."""
    guard = Deferral()
    guard.enter()  # a worker's tuner holds while it asks its chief for a trial
    guard.give_up()  # nothing waits: nothing raised
    waiting = Stop("waiting")
    guard.interrupt(waiting)
    with pytest.raises(Stop) as raised:
        guard.give_up()
    assert raised.value is waiting
    guard.reset()
    later = Stop("later")
    with pytest.raises(Stop) as raised:  # its clean-up waits on the gone chief too: raised again
        with guard.hold():
            guard.give_up()
    assert raised.value is waiting
    guard.reset()
    guard.enter()
    guard.interrupt(later)  # raised already: a later one waits, as in any clean-up
    with pytest.raises(Stop) as raised:
        guard.give_up()
    assert raised.value is waiting


def test_an_interrupt_that_python_dropped_is_raised_again_between_training_steps():
    guard = Deferral()
    guard.raise_lost()  # none yet
    lost = Stop("SIGTERM")
    try:
        guard.interrupt(lost)
    except Stop:
        pass  # what Python does with it inside a finalizer: "Exception ignored in sys.unraisablehook"
    with guard.hold():
        guard.raise_lost()  # not inside a held section
    with pytest.raises(Stop) as raised:
        guard.raise_lost()
    assert raised.value is lost


def test_what_an_interrupted_command_says_depends_on_its_role(monkeypatch):
    """A chief or a single process is resumed; a worker on another host joins again with its id (its
    trial comes back to it); a chief's local worker leaves that to its chief."""
    import sys
    from argparse import Namespace
    from pathlib import Path

    from lstm_models.cli import _interrupted

    monkeypatch.setattr(sys, "argv", ["/venv/bin/lstm-models"])
    alone = Namespace(state_folder=Path("runs/sentiment"), verdict_jobs=None, worker=None, worker_id="worker-h-1")
    said = _interrupted(alone, ["sweep", "sweeps/sentiment.yaml", "--fresh"])
    assert said.endswith("finished trials are kept in runs/sentiment. Resume with:\n"
                         "  /venv/bin/lstm-models sweep sweeps/sentiment.yaml --resume")
    remote = Namespace(state_folder=Path("runs/s"), verdict_jobs=None, worker="10.0.0.5:8000", worker_id="worker-h-1")
    said = _interrupted(remote, ["sweep", "s.yaml", "--worker", "10.0.0.5:8000", "--resume"])
    assert said == (": worker-h-1's running trial is marked KILLED and goes back to the chief at 10.0.0.5:8000 for "
                    "another worker. Join the sweep again with:\n  /venv/bin/lstm-models sweep s.yaml --worker "
                    "10.0.0.5:8000 --worker-id worker-h-1")
    named = _interrupted(Namespace(**{**vars(remote), "worker_id": "a"}),
                         ["sweep", "s.yaml", "--worker", "10.0.0.5:8000", "--worker-id", "a"])
    assert named.startswith(": a's running trial") and named.endswith(
        "with:\n  /venv/bin/lstm-models sweep s.yaml --worker 10.0.0.5:8000 --worker-id a")
    local = Namespace(state_folder=Path("runs/s"), verdict_jobs="runs/s/verdict/jobs.json", worker="127.0.0.1:8000",
                      worker_id="worker-1")
    assert "--resume" not in _interrupted(local, []).split("(")[0] and "the chief that started it" in _interrupted(local, [])
    waiting = Namespace(**{**vars(local), "state_folder": None})  # started before its chief listened
    assert _interrupted(waiting, []).startswith(": worker-1 had not joined the sweep yet; the chief that started it "
                                                "continues or stops the sweep")
    assert _interrupted(Namespace(), []) == " before the sweep started; nothing to resume"
