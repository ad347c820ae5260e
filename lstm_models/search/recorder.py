"""The trial recorder: each trial's MLflow run, its record in the state file, its progress lines.

Keras Tuner's adapter (`lstm_models.search.tuner`) calls it at five moments: `begin` (a trial's
run opens), `epoch` (its metrics), `prune` (the pruner stops it), `end` (its outcome) and `abort`
(a signal or an error stopped it). It knows nothing of Keras Tuner: it is handed plain values.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lstm_models.search.state import SweepState, save_state
from lstm_models.tracking.report import format_value
from lstm_models.tracking.tracker import Tracker

if TYPE_CHECKING:
    from lstm_models.models.build import ModelSpec

CHECKPOINT = "checkpoint"  # where a worker logs a trial's best checkpoint in its run
RECORD_TAG = "trial_record"  # a trial run's record (`TrialResult.record`), as JSON: how a chief gathers its workers' trials
INTERRUPTED = "interrupted: the sweep was stopped while this trial ran; --resume runs it again"
FLUSH_SECONDS = 5.0  # a trial's epochs reach the store at most this late (`PendingEpochs`)


@dataclass
class TrialResult:
    """One trial as the leaderboard and the tracking store see it."""

    trial_id: str
    number: int
    spec: ModelSpec
    run_id: str = ""
    status: str = "RUNNING"  # then FINISHED, FAILED, or KILLED (interrupted)
    objective: float | None = None
    best_epoch: int | None = None
    epochs: int = 0
    seconds_per_epoch: float | None = None
    n_params: int | None = None
    error: str = ""
    lost: bool = False  # ended by its process stopping, not by its own fault: --resume runs it again
    pruned_epoch: int | None = None  # stopped by the pruner after this epoch (1-based)
    test_metrics: dict[str, float] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)  # time/<phase>_s (`lstm_models.search.timing`)

    @property
    def name(self) -> str:
        return f"trial-{self.number:02d} {self.spec.label()}"

    def record(self) -> dict:
        """What the sweep state file keeps of this trial."""
        return {"trial_id": self.trial_id, "number": self.number, "run_id": self.run_id, "status": self.status,
                "objective": self.objective, "best_epoch": self.best_epoch, "epochs": self.epochs,
                "seconds_per_epoch": self.seconds_per_epoch, "n_params": self.n_params, "error": self.error,
                "lost": self.lost, "pruned_epoch": self.pruned_epoch, "timing": self.timing}


def better(direction: str, a: float | None, b: float | None) -> bool:
    """Whether objective ``a`` beats ``b`` (None: no value yet); NaN and None never win."""
    if a is None or not math.isfinite(a):
        return False
    if b is None or not math.isfinite(b):
        return True
    return a > b if direction == "max" else a < b


class TrialRecorder:
    """Keeps the sweep's trials: their runs, their state records, their progress lines.

    Args:
        objective: the metric the search optimises (``val_accuracy`` ...); ``direction`` max or min.
        max_trials: shown in progress lines (``[trial 2/6]``).
        tracker: where runs go. state, folder: the sweep state and where it is saved.
        log: where progress lines go. on_trial: called with each trial's result as it ends.
        run_tags: on every trial run. number_from_id: a worker numbers trials by the oracle's ids.
        dataset: the sweep's data (`lstm_models.data.splits.dataset_record`), every trial run's input.
        system_metrics: sample CPU and memory into every trial run.
    """

    def __init__(self, objective: str, direction: str, max_trials: int, tracker: Tracker, state: SweepState,
                 folder: Path, log: Callable[[str], None], on_trial: Callable[[TrialResult], None] | None = None,
                 run_tags: dict | None = None, number_from_id: bool = False, dataset: dict | None = None,
                 system_metrics: bool = False):
        self.objective, self.direction, self.max_trials = objective, direction, max_trials
        self.tracker, self.state, self.folder, self.log, self.on_trial = tracker, state, folder, log, on_trial
        self.run_tags = run_tags or {}  # on every trial run (a worker's id, host, process)
        self.number_from_id = number_from_id  # a worker: trial numbers follow the oracle's trial ids
        self.dataset, self.system_metrics = dataset, system_metrics
        self.trials: list[TrialResult] = []
        self.current = self.best = None  # TrialResult | None: the running trial, the best finished one
        self.failures_in_a_row = 0
        self.pending = PendingEpochs(tracker)  # the running trial's unwritten epochs

    def save(self, result: TrialResult | None = None) -> None:
        if result is not None:
            # Keyed by run (a lost trial and its rerun share a number when workers number trials by id).
            self.state.trials[result.run_id or str(result.number)] = result.record()
        save_state(self.folder, self.state)

    def keep(self, result: TrialResult) -> None:
        """Take a trial recorded before this process (on resume); one left RUNNING is current, for `end` or `abort`."""
        self.trials.append(result)
        if result.status == "RUNNING":
            self.current = result
            self.pending.start(result.run_id)
        if result.status == "FINISHED" and better(self.direction, result.objective, self.best and self.best.objective):
            self.best = result

    def begin(self, trial_id: str, spec: ModelSpec, tuner_values: dict, note: str = "") -> TrialResult:
        """Open a trial's run and record it; ``note`` tells how the tuner runs it (Hyperband's budget)."""
        number = int(trial_id) + 1 if self.number_from_id else len(self.trials) + 1
        result = TrialResult(trial_id=trial_id, number=number, spec=spec)
        lost = [t for t in self.trials if t.lost]
        again = [t.name.split()[0] for t in lost if t.trial_id == trial_id]
        note += f" (runs {again[-1]} again: it was lost with its process)" if again else ""
        result.run_id = self.tracker.start_trial(
            result.name, {**spec.params(), **tuner_values}, {"cell": spec.cell, "trial_id": trial_id,
                                                              "status": "RUNNING", **self.run_tags},
            self.system_metrics)
        if self.dataset:
            self.tracker.log_dataset(result.run_id, self.dataset)
        self.trials.append(result)
        self.current = result
        self.pending.start(result.run_id)
        self.save(result)
        details = ", ".join(f"{k}={format_value(v)}" for k, v in spec.params().items() if k != "task")
        self.log(f"[trial {result.number}/{self.max_trials + len(lost)}] {spec.label()}{note}\n    {details}")
        return result

    def epoch(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None:
        result = self.current
        metrics = {k: float(v) for k, v in logs.items() if np.isscalar(v) or np.ndim(v) == 0}
        metrics["epoch_seconds"] = seconds
        self.pending.add(epoch, metrics)
        result.epochs += 1
        total = (result.seconds_per_epoch or 0.0) * (result.epochs - 1) + seconds
        result.seconds_per_epoch = total / result.epochs
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "epoch_seconds")
        self.log(f"    epoch {epoch + 1}/{epochs}  {shown}  ({seconds:.1f}s)")

    def prune(self, epoch: int, why: str) -> None:
        """The pruner stopped the current trial after ``epoch`` (0-based), for the reason ``why``."""
        result = self.current
        result.pruned_epoch = epoch + 1
        self.tracker.set_tags(result.run_id, {"pruned": "true", "pruned_epoch": str(epoch + 1)})
        self.log(f"    pruned after epoch {epoch + 1}: {why}")

    def end(self, score: float | None, best_step: int | None, message: str = "", checkpoint: str | None = None,
            timing: dict[str, float] | None = None) -> None:
        """Close the current trial: FINISHED with a finite ``score``, else FAILED with ``message``.

        ``checkpoint``: the trial's best checkpoint, logged to its run (a worker's: the chief and
        the other workers may not share its files). ``timing``: its ``time/<phase>_s`` metrics
        (`lstm_models.search.timing`). The trial stays current until its run is closed: if a write
        fails on the way, `abort` closes the run."""
        result = self.current
        if result is None:
            return
        result.timing = dict(timing or {})
        if score is not None and math.isfinite(score):
            result.status, result.objective, result.best_epoch = "FINISHED", float(score), int(best_step)
            self.pending.flush({f"final_{self.objective}": result.objective, "param_count": result.n_params or 0,
                                "seconds_per_epoch": result.seconds_per_epoch or 0.0, "best_epoch": result.best_epoch,
                                **result.timing})
            if checkpoint is not None:
                self.tracker.log_artifact(result.run_id, checkpoint, CHECKPOINT)
            if better(self.direction, result.objective, self.best.objective if self.best else None):
                self.best = result
            self.failures_in_a_row = 0
        else:
            result.status = "FAILED"
            result.error = _error_line(message) or "the objective was not finite (NaN loss?)"
            self.pending.flush(result.timing)
            self.tracker.set_tags(result.run_id, {"error": result.error[:500]})
            if message:
                _log_traceback(self.tracker, result.run_id, message)
            self.failures_in_a_row += 1
        self.tracker.set_tags(result.run_id, {"status": result.status, RECORD_TAG: json.dumps(result.record())})
        self.tracker.end_run(result.run_id, result.status)
        self.save(result)
        self.current = None
        best = f"best so far {self.best.objective:.4f} ({self.best.spec.cell})" if self.best else "no finished trial yet"
        outcome = f"{self.objective} {result.objective:.4f}" if result.objective is not None else result.error
        self.log(f"    -> {result.status}: {outcome}; {best}")
        if self.on_trial is not None:
            self.on_trial(result)

    def drop(self, why: str) -> None:
        """Forget the current trial (a worker's): its chief gave it to another worker and closed its run."""
        result, self.current = self.current, None
        if result is not None:  # (its run began)
            self.trials.remove(result)
            self.state.trials.pop(result.run_id, None)
            self.save()
        self.log(f"    -> dropped: {why}")

    def abort(self, status: str, error: str = "", lost: bool | None = None) -> None:
        """Close the running trial's run as KILLED (a signal) or FAILED (an error, or ``error``).

        A trial stopped by a signal is ``lost`` (not its own fault): ``--resume`` runs it again.
        """
        result, self.current = self.current, None
        if result is None:
            return
        self.pending.flush()
        result.status = status
        result.lost = status == "KILLED" if lost is None else lost
        result.error = error or (INTERRUPTED if status == "KILLED"
                                 else "the sweep stopped with an error while this trial ran")
        self.tracker.set_tags(result.run_id, {"status": status, "error": result.error, RECORD_TAG: json.dumps(result.record()),
                                              **({"lost": "true"} if result.lost else {})})
        self.tracker.end_run(result.run_id, status)
        self.save(result)

    def counted(self) -> int:
        """The trials that count towards ``max_trials``: all but the lost ones."""
        return sum(not t.lost for t in self.trials)


def _log_traceback(tracker: Tracker, run_id: str, message: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lstm-models-") as tmp:
        path = Path(tmp) / "traceback.txt"
        path.write_text(message, encoding="utf-8")
        tracker.log_artifact(run_id, path)


class PendingEpochs:
    """A trial's epoch metrics, written to its run together: at most ``flush_seconds`` after the
    epoch, and all of them when the trial ends (or when `flush` is called).

    Each write is one transaction of the store; on SQLite it took as long as a short series'
    epoch, and a sunspots trial trains up to 40 of them. An epoch longer than ``flush_seconds`` is
    written as it ends, so a long trial's curves still grow live in the MLflow UI.
    """

    def __init__(self, tracker: Tracker, flush_seconds: float = FLUSH_SECONDS):
        self.tracker, self.flush_seconds = tracker, flush_seconds
        self.run_id, self.steps, self.flushed = "", [], 0.0

    def start(self, run_id: str) -> None:
        self.run_id, self.steps, self.flushed = run_id, [], time.monotonic()

    def add(self, step: int, metrics: dict[str, float]) -> None:
        self.steps.append((step, metrics, int(time.time() * 1000)))
        if time.monotonic() - self.flushed >= self.flush_seconds:
            self.flush()

    def flush(self, last: dict[str, float] | None = None) -> None:
        """Write the pending epochs, and ``last`` (the trial's closing metrics, at step 0), in one write."""
        steps = self.steps + ([(0, last, int(time.time() * 1000))] if last else [])
        self.steps, self.flushed = [], time.monotonic()
        if steps:
            self.tracker.log_steps(self.run_id, steps)


def fail_runs(tracker: Tracker, run_ids, reason: str, tags: dict | None = None) -> None:
    """Close runs a dead or replaced process left open: FAILED, with the reason as their error."""
    for run_id in run_ids:
        tracker.set_tags(run_id, {"status": "FAILED", "error": reason, **(tags or {})})
        tracker.end_run(run_id, "FAILED")


def _error_line(message: str | None) -> str:
    """The exception line of a formatted traceback (``TrialFailed: loss became nan ...``)."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith(" ")]
    rest = lines[frames[-1] + 1:] if frames else lines
    return (rest[0] if rest else lines[-1] if lines else "").strip()
