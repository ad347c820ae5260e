"""The trials of a sweep while Keras Tuner drives it: each one's record, tracked run and progress.

`SweepRun` is what the tuner (`lstm_models.tuners`) calls around every trial: it checks the
limits (trials, time budget, failures in a row), opens and closes each trial's nested run,
logs every epoch, keeps the state file current, and on resume rebuilds the trials of an
interrupted sweep without rerunning one.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import keras_tuner as kt
import numpy as np

from lstm_models.config import SweepSpec
from lstm_models.errors import ConfigError, SweepFailed, TrialFailed
from lstm_models.interrupt import Deferral
from lstm_models.models import ModelSpec
from lstm_models.pipeline import Pipeline, prepare_inputs
from lstm_models.report import format_value
from lstm_models.rules import format_duration
from lstm_models.search_space import sample_spec
from lstm_models.state import SweepState, save_state
from lstm_models.tuners import INTERRUPTED, SearchDone, close_unended

MAX_FAILURES_IN_A_ROW = 3
DIED = "the process running this trial stopped before the trial ended (kill -9, crash or power loss); not rerun"


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
    test_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"trial-{self.number:02d} {self.spec.label()}"

    def record(self) -> dict:
        """What the sweep state file keeps of this trial."""
        return {"number": self.number, "run_id": self.run_id, "status": self.status, "objective": self.objective,
                "best_epoch": self.best_epoch, "epochs": self.epochs, "seconds_per_epoch": self.seconds_per_epoch,
                "n_params": self.n_params, "error": self.error}


class SweepRun:
    """The state of one sweep while Keras Tuner drives it."""

    def __init__(self, spec: SweepSpec, data, tracker, log: Callable[[str], None], folder: Path,
                 state: SweepState, guard: Deferral, clock: Callable[[], float],
                 on_trial: Callable[[TrialResult], None] | None = None):
        self.spec = spec
        self.data = data
        self.tracker = tracker
        self.log = log
        self.folder = folder
        self.state = state
        self.guard = guard
        self.clock = clock
        self.on_trial = on_trial
        self.started = clock()
        max_tokens = spec.dataset.options.get("max_tokens")
        self.inputs = prepare_inputs(data, max_tokens)
        self.pipeline = Pipeline(data, self.inputs)
        self.trials: list[TrialResult] = []
        self.current: TrialResult | None = None
        self.best: TrialResult | None = None
        self.failures_in_a_row = 0
        self.stop_reason = ""

    def model_spec(self, hp) -> ModelSpec:
        return sample_spec(hp, self.spec.search, self.spec.task, self.spec.dataset.options.get("lookback"))

    def better(self, a: float | None, b: float | None) -> bool:
        if a is None or not math.isfinite(a):
            return False
        if b is None:
            return True
        return a > b if self.spec.direction == "max" else a < b

    def callbacks(self, epochs: int) -> list:
        es = self.spec.early_stopping
        out = [_EpochLog(self, epochs), _StopOnNaN()]
        if es.patience > 0:
            out.append(keras.callbacks.EarlyStopping(
                monitor=self.spec.objective, mode=self.spec.direction, patience=es.patience,
                min_delta=es.min_delta))
        return out

    def save(self, result: TrialResult | None = None) -> None:
        if result is not None:
            self.state.trials[result.trial_id] = result.record()
        save_state(self.folder, self.state)

    def check_limits(self) -> None:
        """Stop before a new trial once ``max_trials`` have run or the time budget is spent."""
        if len(self.trials) >= self.spec.tuner.max_trials:
            raise SearchDone()
        budget = self.spec.tuner.time_budget
        spent = self.clock() - self.started
        if budget is not None and spent >= budget:
            self.stop_reason = (f"time budget {format_duration(budget)} spent ({spent:.0f}s) after "
                                f"{len(self.trials)} of {self.spec.tuner.max_trials} trials")
            self.log(f"{self.stop_reason}: no new trial; the best model so far is exported")
            raise SearchDone()

    def check_failures(self) -> None:
        if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            kept = sum(t.status == "FINISHED" for t in self.trials)
            raise SweepFailed(
                f"sweep {self.spec.name}: stopped after {self.failures_in_a_row} failed trials in a row; last error: "
                f"{self.trials[-1].error}. The {kept} finished trial(s) are kept; fix the cause and resume")

    def begin_trial(self, trial) -> None:
        hp = trial.hyperparameters
        keras.utils.set_random_seed(self.spec.tuner.seed + int(trial.trial_id))
        spec = self.model_spec(hp.copy())
        result = TrialResult(trial_id=trial.trial_id, number=len(self.trials) + 1, spec=spec)
        params = {**spec.params(), **{k: v for k, v in hp.values.items() if k.startswith("tuner/")}}
        result.run_id = self.tracker.start_trial(
            result.name, params, {"cell": spec.cell, "trial_id": trial.trial_id, "status": "RUNNING"})
        self.trials.append(result)
        self.current = result
        self.save(result)
        details = ", ".join(f"{k}={format_value(v)}" for k, v in spec.params().items() if k != "task")
        budget = hp.values.get("tuner/epochs")
        extra = f" (hyperband: epochs {hp.values['tuner/initial_epoch']}->{budget})" if budget else ""
        self.log(f"[trial {result.number}/{self.spec.tuner.max_trials}] {spec.label()}{extra}\n    {details}")

    def end_trial(self, trial) -> None:
        result = self.current
        self.current = None
        if result is None:
            return
        ok = trial.status == kt.engine.trial.TrialStatus.COMPLETED
        if ok and trial.score is not None and math.isfinite(trial.score):
            result.status = "FINISHED"
            result.objective = float(trial.score)
            result.best_epoch = int(trial.best_step)
            self.tracker.log_metrics(result.run_id, {
                f"final_{self.spec.objective}": result.objective,
                "param_count": result.n_params or 0,
                "seconds_per_epoch": result.seconds_per_epoch or 0.0,
                "best_epoch": result.best_epoch,
            })
            if self.better(result.objective, self.best.objective if self.best else None):
                self.best = result
            self.failures_in_a_row = 0
        else:
            result.status = "FAILED"
            result.error = _error_line(trial.message) or "the objective was not finite (NaN loss?)"
            self.tracker.set_tags(result.run_id, {"error": result.error[:500]})
            if trial.message:
                self._log_traceback(result, trial.message)
            self.failures_in_a_row += 1
        self.tracker.set_tags(result.run_id, {"status": result.status})
        self.tracker.end_run(result.run_id, result.status)
        self.save(result)
        best = f"best so far {self.best.objective:.4f} ({self.best.spec.cell})" if self.best else "no finished trial yet"
        outcome = f"{self.spec.objective} {result.objective:.4f}" if result.objective is not None else result.error
        self.log(f"    -> {result.status}: {outcome}; {best}")
        if self.on_trial is not None:
            self.on_trial(result)

    def _log_traceback(self, result: TrialResult, message: str) -> None:
        with tempfile.TemporaryDirectory(prefix="lstm-models-") as tmp:
            path = Path(tmp) / "traceback.txt"
            path.write_text(message, encoding="utf-8")
            self.tracker.log_artifact(result.run_id, path)

    def abort(self, status: str, error: str = "") -> None:
        """Close the running trial's run as KILLED (a signal) or FAILED (an error, or ``error``)."""
        result, self.current = self.current, None
        if result is None:
            return
        result.status = status
        result.error = error or (INTERRUPTED if status == "KILLED"
                                 else "the sweep stopped with an error while this trial ran")
        self.tracker.set_tags(result.run_id, {"status": status, "error": result.error})
        self.tracker.end_run(result.run_id, status)
        self.save(result)

    def restore(self, oracle) -> None:
        """Rebuild the trials of an interrupted sweep from its state file and Keras Tuner's oracle.

        Finished and failed trials are kept as they are. A trial the oracle never ended is not
        rerun: it is closed in the oracle as FAILED (so no Keras Tuner code retries or scores
        it) and, if its process died without closing its run, that run is marked FAILED.
        """
        interrupted = close_unended(oracle)
        died = 0
        for trial_id, rec in sorted(self.state.trials.items(), key=lambda item: item[1]["number"]):
            ktrial = oracle.trials.get(trial_id)
            if ktrial is None:
                raise ConfigError(f"{self.folder}: trial {trial_id} is in {self.folder / 'sweep.json'} but not in "
                                  "Keras Tuner's project; the state is inconsistent, start again with --fresh")
            result = TrialResult(trial_id=trial_id, spec=self.model_spec(ktrial.hyperparameters.copy()), **rec)
            self.trials.append(result)
            if result.status != "RUNNING":
                if result.status == "FINISHED" and self.better(result.objective, self.best and self.best.objective):
                    self.best = result
                continue
            if trial_id not in interrupted and ktrial.status == kt.engine.trial.TrialStatus.COMPLETED:
                self.current = result  # it ended in the oracle; the process died before the run was closed
                self.end_trial(ktrial)
                continue
            died += 1
            self.current = result
            self.abort("FAILED", DIED)
        known = {t.run_id for t in self.trials}
        fail_runs(self.tracker, [r for r in self.tracker.running_trials(self.state.parent_run_id) if r not in known],
                  DIED)  # opened by a process killed before it recorded the trial
        finished = sum(t.status == "FINISHED" for t in self.trials)
        note = f"; {died} left running by a dead process, marked FAILED" if died else ""
        self.log(f"resuming sweep {self.spec.name} (parent run {self.state.parent_run_id or '-'}): "
                 f"{len(self.trials)} of {self.spec.tuner.max_trials} trials kept, {finished} finished, none rerun{note}")

    def epoch_end(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None:
        result = self.current
        metrics = {k: float(v) for k, v in logs.items() if np.isscalar(v) or np.ndim(v) == 0}
        metrics["epoch_seconds"] = seconds
        self.tracker.log_metrics(result.run_id, metrics, step=epoch)
        result.epochs += 1
        total = (result.seconds_per_epoch or 0.0) * (result.epochs - 1) + seconds
        result.seconds_per_epoch = total / result.epochs
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "epoch_seconds")
        self.log(f"    epoch {epoch + 1}/{epochs}  {shown}  ({seconds:.1f}s)")


class _EpochLog(keras.callbacks.Callback):
    def __init__(self, sweep: SweepRun, epochs: int):
        super().__init__()
        self.sweep, self.epochs, self.start = sweep, epochs, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.sweep.epoch_end(epoch, self.epochs, logs or {}, time.perf_counter() - self.start)


class _StopOnNaN(keras.callbacks.Callback):
    """A NaN or infinite loss ends the trial at once, as a failure."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrialFailed(f"loss became {float(loss)} at batch {batch}")


def fail_runs(tracker, run_ids, reason: str) -> None:
    """Close runs a dead or replaced process left open: FAILED, with the reason as their error."""
    for run_id in run_ids:
        tracker.set_tags(run_id, {"status": "FAILED", "error": reason})
        tracker.end_run(run_id, "FAILED")


def _error_line(message: str | None) -> str:
    """The exception line of a formatted traceback (``TrialFailed: loss became nan ...``)."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith(" ")]
    rest = lines[frames[-1] + 1:] if frames else lines
    return (rest[0] if rest else lines[-1] if lines else "").strip()
