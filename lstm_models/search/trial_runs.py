"""A sweep's trial runs in the tracking store, with workers: closed when their workers are gone (as
the workers would have, or lost), gathered by the chief, their checkpoints fetched.

A worker records a trial on its run (`lstm_models.search.recorder`: the checkpoint, then the
record tag, then the run's end) after the trial's end reached the chief's oracle. A worker that
dies or falls silent before the end leaves a RUNNING run of a trial the chief runs again
(`lstm_models.search.chief`); one that dies between the two leaves a run whose trial the oracle
counted completed, and which runs again too (`lstm_models.search.oracle.reopen`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from lstm_models.errors import SweepFailed
from lstm_models.search.recorder import CHECKPOINT, RECORD_TAG, TrialRecorder, TrialResult, fail_runs

LOST = "the worker training this trial died or fell silent (kill -9, crash, power or network loss); another worker ran it again"


def wait_for_runs(recorder: TrialRecorder, timeout: float) -> None:
    """A worker closes a trial's run just after the oracle ends the trial: wait for the last ones.

    A run whose worker died in between is closed here (`close_orphan`)."""
    tracker, parent = recorder.tracker, recorder.state.parent_run_id
    deadline = time.monotonic() + timeout
    while tracker.running_trials(parent) and time.monotonic() < deadline:
        time.sleep(1.0)
    for run in tracker.trial_runs(parent):
        if run["status"] == "RUNNING":
            close_orphan(tracker, run)


def close_orphan(tracker, run: dict) -> None:
    """Close a run whose worker died: as its record says if it had recorded the trial whole
    (`holds_record`), else FAILED and ``lost``."""
    if holds_record(run):
        tracker.end_run(run["run_id"], json.loads(run["tags"][RECORD_TAG])["status"])
    else:
        fail_runs(tracker, [run["run_id"]], LOST, {"lost": "true"})


def holds_record(run: dict) -> bool:
    """Whether a run holds its trial's record as its worker wrote it at the trial's end (FINISHED,
    after its checkpoint, or FAILED): not an interrupted attempt's (`TrialRecorder.abort`, ``lost``),
    nor one on a run the chief closed as lost."""
    record = json.loads(run["tags"].get(RECORD_TAG, "{}"))
    whole = record.get("status") in ("FINISHED", "FAILED") and not record.get("lost")
    return whole and run["tags"].get("lost") != "true"


@dataclass(frozen=True)
class Found:
    """What a resumed chief finds of its earlier workers' trial runs (`still_with_workers`)."""

    running: dict[str, str] = field(default_factory=dict)  # trial id -> worker: still RUNNING, may reconnect
    recording: dict[str, str] = field(default_factory=dict)  # of those, the runs without their record yet
    unrecorded: frozenset[str] = frozenset()  # trials no run recorded, none of them still open to a worker


def still_with_workers(tracker, parent_run_id: str) -> Found:
    """The trials whose runs are still RUNNING, whose workers may reconnect to a resumed chief; and
    those no run recorded, none of whose runs is still open (its worker gone, or stopped while it
    waited on the dead chief: `lstm_models.search.oracle.adopt_unended` runs them again if the
    oracle counted them completed, and awaits the records of the open ones).

    A run whose worker ran on this machine in a process that has ended (`worker_gone`: a local
    worker that stopped with its chief, on a kill or a lost tracking server) is closed now
    (`close_orphan`): the resumed chief waited ``worker_timeout`` for it before it ran the trial
    again."""
    from lstm_models.search.worker import worker_gone

    runs = tracker.trial_runs(parent_run_id)
    running = [r for r in runs if r["status"] == "RUNNING"]
    gone = [r for r in running if worker_gone(r["tags"])]
    for run in gone:
        close_orphan(tracker, run)
    recorded = {r["tags"].get("trial_id") for r in runs if holds_record(r)}
    alive = [r for r in running if r not in gone]
    open_ = {r["tags"].get("trial_id") for r in alive}
    return Found({r["tags"].get("trial_id"): r["tags"].get("worker", "") for r in alive},
                 {r["tags"].get("trial_id"): r["tags"].get("worker", "") for r in alive if not holds_record(r)},
                 frozenset({r["tags"].get("trial_id") for r in runs} - recorded - open_))


def gather(tracker, parent_run_id: str) -> list[TrialResult]:
    """Every trial run of the sweep, as records in trial order (their specs are filled in by the caller)."""
    out = []
    for run in tracker.trial_runs(parent_run_id):
        tags = run["tags"]
        record = json.loads(tags.get(RECORD_TAG, "{}"))
        if record.get("status") == run["status"] and not (run["status"] == "FINISHED" and tags.get("lost") == "true"):
            out.append(TrialResult(spec=None, **record))
        else:  # its worker died before it recorded the trial (or recorded it after the chief closed the run lost)
            out.append(TrialResult(trial_id=tags["trial_id"], number=int(tags["trial_id"]) + 1, spec=None,
                                   run_id=run["run_id"], status="FAILED", error=LOST, lost=True))
    return sorted(out, key=lambda t: (t.number, t.status == "FINISHED"))


def fail_recorded(tracker, run_ids: list[str], trial_id: str, error: str) -> None:
    """Close a trial's runs FAILED with ``error``, and its record, as its worker would have."""
    for run_id in run_ids:
        record = TrialResult(trial_id, int(trial_id) + 1, None, run_id, "FAILED", error=error).record()
        tracker.set_tags(run_id, {RECORD_TAG: json.dumps(record)})
    fail_runs(tracker, run_ids, error)


def fetch_checkpoint(recorder: TrialRecorder, trial_id: str, path: Path, wait: float = 0.0) -> None:
    """Download a trial's best checkpoint, which a worker logged to its finished run, to ``path``.

    ``wait``: seconds to wait for that run to finish. A worker records a trial just after its end
    reached the chief (`lstm_models.search.oracle`), so a Hyperband trial that continues it, given
    out at once to a worker on another host, may look for the checkpoint a second too early."""
    deadline = time.monotonic() + wait
    while True:
        runs = [r for r in recorder.tracker.trial_runs(recorder.state.parent_run_id, tags={"trial_id": trial_id})
                if r["status"] == "FINISHED" and holds_record(r)]
        if runs or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    if not runs:
        raise SweepFailed(f"trial {int(trial_id) + 1}: its checkpoint is neither in {path.parent} nor in a "
                          f"finished run of the sweep in {recorder.tracker.uri}")
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder.tracker.download_artifact(runs[0]["run_id"], f"{CHECKPOINT}/{path.name}", path.parent)
