"""Opening a sweep: a new parent run, the parent run of a resumed sweep, or a fresh one in place.

A trial that was running when its process stopped was lost, not failed: its run is closed
(KILLED by a signal, FAILED after a ``kill -9``) and tagged ``lost``, and ``--resume`` runs it
again first; lost trials do not count towards ``max_trials``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lstm_models.errors import ConfigError
from lstm_models.search.recorder import TrialRecorder, TrialResult, fail_runs
from lstm_models.search.state import SweepState, save_state
from lstm_models.spec.sweep import SweepSpec
from lstm_models.tracking.tracker import Tracker, flatten

DIED = ("the process running this trial stopped before the trial ended (kill -9, crash or power loss); "
        "--resume runs it again")


def open_state(spec: SweepSpec, tracker: Tracker, folder: Path, previous: SweepState | None,
               tags: dict, data: str) -> SweepState:
    """Reopen the parent run of a resumed sweep, or start a new one and write its state (``data``:
    the data's fingerprint, which a resume must match)."""
    if previous is not None:
        previous.spec = spec.to_dict()  # max_trials and time_budget may change on resume
        tracker.reopen_sweep(previous.parent_run_id)
        save_state(folder, previous)
        return previous
    parent_tags = {"dataset": spec.dataset.kind, "task": spec.task, "tuner": spec.tuner.kind,
                   "seed": str(spec.tuner.seed), **tags}
    parent = tracker.start_sweep(spec.name, f"sweep {spec.name} ({spec.tuner.kind})",
                                 flatten(spec.to_dict()), parent_tags)
    state = SweepState(name=spec.name, parent_run_id=parent, tracking_uri=tracker.uri, spec=spec.to_dict(), data=data)
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

    Finished and failed trials are kept as they are. A trial the oracle never ended was lost with
    its process (a signal, ``kill -9``): its run is closed (KILLED, or FAILED if its process died
    without closing it) and tagged ``lost``, and Keras Tuner runs it again, with the same
    hyperparameters and seeds, before any new trial. Lost trials do not count towards ``max_trials``.

    Args:
        recorder: the sweep's recorder, with the state it reopened.
        oracle: Keras Tuner's reloaded oracle.
        model_spec: ``hp -> ModelSpec`` (the hypermodel's), to rebuild each trial's spec.
        folder: the state folder, for messages. name: the sweep's name.
    """
    from lstm_models.search.pruning import COMPLETED, FAILED
    from lstm_models.search.oracle import requeue_unended

    again = requeue_unended(oracle)
    state = recorder.state
    for rec in sorted(state.trials.values(), key=lambda rec: rec["number"]):
        ktrial = oracle.trials.get(rec["trial_id"])
        if ktrial is None:
            raise ConfigError(f"{folder}: trial {rec['trial_id']} is in {folder / 'sweep.json'} but not in "
                              "Keras Tuner's project; the state is inconsistent, start again with --fresh")
        result = TrialResult(spec=model_spec(ktrial.hyperparameters.copy()), **rec)
        recorder.keep(result)
        if result.status == "RUNNING":  # `keep` made it the recorder's current trial
            if ktrial.status in (COMPLETED, FAILED):  # it ended in the oracle; its process died before the run
                recorder.end(ktrial.score if ktrial.status == COMPLETED else None, ktrial.best_step, ktrial.message or "")
            else:
                recorder.abort("FAILED", DIED, lost=True)
        elif result.trial_id in again and not result.lost:
            result.lost = True  # its process stopped on an error, or on a signal before lost trials ran again
            recorder.tracker.set_tags(result.run_id, {"lost": "true"})
            recorder.save(result)
    known = {t.run_id for t in recorder.trials}
    fail_runs(recorder.tracker, [r for r in recorder.tracker.running_trials(state.parent_run_id) if r not in known],
              DIED, {"lost": "true"})  # opened by a process killed before it recorded the trial
    recorder.save()
    finished = sum(t.status == "FINISHED" for t in recorder.trials)
    lost = sum(t.lost and t.trial_id in again for t in recorder.trials)
    note = f"; {lost} lost with its process, run again first" if lost else ", none rerun"
    recorder.log(f"resuming sweep {name} (parent run {state.parent_run_id or '-'}): {len(recorder.trials)} trials "
                 f"kept ({recorder.counted()} of {recorder.max_trials} counted), {finished} finished{note}")
