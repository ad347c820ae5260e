"""Opening a sweep: a new parent run, the parent run of a resumed sweep, or a fresh one in place.

A trial that was running when its process stopped is not rerun: its run is closed (KILLED by
a signal, FAILED after a ``kill -9``) and counts towards ``max_trials``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lstm_models.errors import ConfigError
from lstm_models.search.recorder import TrialRecorder, TrialResult, fail_runs
from lstm_models.search.state import SweepState, save_state
from lstm_models.spec.sweep import SweepSpec
from lstm_models.tracking.tracker import Tracker, flatten

DIED = "the process running this trial stopped before the trial ended (kill -9, crash or power loss); not rerun"


def open_state(spec: SweepSpec, tracker: Tracker, folder: Path, previous: SweepState | None,
               tags: dict) -> SweepState:
    """Reopen the parent run of a resumed sweep, or start a new one and write its state."""
    if previous is not None:
        previous.spec = spec.to_dict()  # max_trials and time_budget may change on resume
        tracker.reopen_sweep(previous.parent_run_id)
        save_state(folder, previous)
        return previous
    parent_tags = {"dataset": spec.dataset.kind, "task": spec.task, "tuner": spec.tuner.kind,
                   "seed": str(spec.tuner.seed), **tags}
    parent = tracker.start_sweep(spec.name, f"sweep {spec.name} ({spec.tuner.kind})",
                                 flatten(spec.to_dict()), parent_tags)
    state = SweepState(name=spec.name, parent_run_id=parent, tracking_uri=tracker.uri, spec=spec.to_dict())
    save_state(folder, state)
    return state


def close_abandoned(previous: SweepState, tracker: Tracker, log: Callable[[str], None]) -> None:
    """Before ``fresh`` replaces a sweep: runs its dead process left RUNNING become FAILED."""
    log(f"starting a fresh sweep: the previous one ({previous.describe()}) is replaced; its runs stay in MLflow")
    if previous.tracking_uri != tracker.uri or not previous.parent_run_id:
        return
    reason = "abandoned: replaced by a fresh sweep (--fresh) while this run was still open"
    fail_runs(tracker, tracker.running_trials(previous.parent_run_id), reason)
    if tracker.run_status(previous.parent_run_id) == "RUNNING":
        tracker.set_tags(previous.parent_run_id, {"error": reason})
        tracker.end_run(previous.parent_run_id, "FAILED")


def restore_trials(recorder: TrialRecorder, oracle, model_spec: Callable, folder: Path, name: str) -> None:
    """Rebuild the trials of an interrupted sweep from its state file and Keras Tuner's oracle.

    Finished and failed trials are kept as they are. A trial the oracle never ended is not
    rerun: it is closed in the oracle as FAILED (so no Keras Tuner code retries or scores
    it) and, if its process died without closing its run, that run is marked FAILED.

    Args:
        recorder: the sweep's recorder, with the state it reopened.
        oracle: Keras Tuner's reloaded oracle.
        model_spec: ``hp -> ModelSpec`` (the hypermodel's), to rebuild each trial's spec.
        folder: the state folder, for messages. name: the sweep's name.
    """
    from lstm_models.search.tuner import COMPLETED, close_unended

    interrupted = close_unended(oracle)
    died = 0
    state = recorder.state
    for trial_id, rec in sorted(state.trials.items(), key=lambda item: item[1]["number"]):
        ktrial = oracle.trials.get(trial_id)
        if ktrial is None:
            raise ConfigError(f"{folder}: trial {trial_id} is in {folder / 'sweep.json'} but not in "
                              "Keras Tuner's project; the state is inconsistent, start again with --fresh")
        result = TrialResult(trial_id=trial_id, spec=model_spec(ktrial.hyperparameters.copy()), **rec)
        recorder.keep(result)
        if result.status != "RUNNING":
            continue
        recorder.current = result
        if trial_id not in interrupted and ktrial.status == COMPLETED:
            recorder.end(ktrial.score, ktrial.best_step)  # it ended in the oracle; its process died before the run
            continue
        died += 1
        recorder.abort("FAILED", DIED)
    known = {t.run_id for t in recorder.trials}
    fail_runs(recorder.tracker, [r for r in recorder.tracker.running_trials(state.parent_run_id) if r not in known],
              DIED)  # opened by a process killed before it recorded the trial
    finished = sum(t.status == "FINISHED" for t in recorder.trials)
    note = f"; {died} left running by a dead process, marked FAILED" if died else ""
    recorder.log(f"resuming sweep {name} (parent run {state.parent_run_id or '-'}): {len(recorder.trials)} of "
                 f"{recorder.max_trials} trials kept, {finished} finished, none rerun{note}")
