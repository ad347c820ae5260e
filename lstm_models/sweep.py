"""run_sweep: a Keras Tuner search whose every trial is a nested MLflow run, then the export.

Keras Tuner drives the search (`lstm_models.tuners` adapts it); this module keeps the sweep's
own state while it does (`_Sweep`: trials, tracked runs, limits, progress lines), then scores
the best model of each cell type once on the test split, exports the best one and reports.

A sweep survives its process: its state (parent run, spec, one record per trial) and Keras
Tuner's project live in a folder (`lstm_models.state`), so ``resume=True`` continues an
interrupted or killed sweep without rerunning a finished trial. A trial that was running when
its process stopped is not rerun either: its run is closed (KILLED by a signal, FAILED after a
``kill -9``) and counts towards ``max_trials``, so a sweep has exactly ``max_trials`` trial runs.
"""

from __future__ import annotations

import math
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import keras_tuner as kt
import numpy as np

from lstm_models import baselines, report
from lstm_models.config import SweepSpec
from lstm_models.rules import format_duration
from lstm_models.data.catalog import data_tags
from lstm_models.data.splits import SeriesSplits, TextSplits
from lstm_models.errors import ConfigError, LstmModelsError, TrialFailed
from lstm_models.export import export_model
from lstm_models.inside import log_inside_views
from lstm_models.interrupt import Deferral
from lstm_models.models import ModelSpec, SeriesInputs, TextInputs, serving_model
from lstm_models.pipeline import Pipeline
from lstm_models.search_space import sample_spec
from lstm_models.state import FINISHED, SweepLock, SweepState, check_start, discard, save_state
from lstm_models.tracking import flatten
from lstm_models.tuners import INTERRUPTED, SearchDone, close_unended, make_tuner

MAX_FAILURES_IN_A_ROW = 3
DIED = "the process running this trial stopped before the trial ended (kill -9, crash or power loss); not rerun"


class SweepFailed(LstmModelsError):
    """The search could not go on (e.g. three trials failed in a row)."""


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


@dataclass
class SweepResult:
    """What a sweep produced: every trial, the best of each cell, the export."""

    spec: SweepSpec
    trials: list[TrialResult]
    best: TrialResult | None
    best_per_cell: dict[str, TrialResult]
    test_metric: str
    export_dir: Path | None = None
    parent_run_id: str = ""
    wall_seconds: float = 0.0
    test_size: int = 0
    baselines: baselines.Baselines | None = None  # baselines and the exported model on the same test data
    stop_reason: str = ""  # why the search ended before max_trials (time budget), else empty
    resumed: bool = False


def prepare_inputs(data: TextSplits | SeriesSplits, max_tokens: int | None = None) -> TextInputs | SeriesInputs:
    """Vocabulary or normalisation statistics, from the training split only."""
    if isinstance(data, TextSplits):
        vectorize = keras.layers.TextVectorization(max_tokens=max_tokens)
        vectorize.adapt(data.part("train")[0].astype(str))
        vocab = vectorize.get_vocabulary()[2:]  # drop '' and [UNK]: the layer adds them back
        return TextInputs(vocabulary=tuple(vocab), num_classes=len(data.class_names))
    mean, var = data.train_stats()
    return SeriesInputs(num_features=data.values.shape[1], horizon=data.horizon,
                        mean=tuple(float(m) for m in mean), variance=tuple(float(v) for v in var))


class _Sweep:
    """The state of one sweep while Keras Tuner drives it."""

    def __init__(self, spec: SweepSpec, data, tracker, log: Callable[[str], None], folder: Path,
                 state: SweepState, guard: Deferral, clock: Callable[[], float]):
        self.spec = spec
        self.data = data
        self.tracker = tracker
        self.log = log
        self.folder = folder
        self.state = state
        self.guard = guard
        self.clock = clock
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
        details = ", ".join(f"{k}={_short(v)}" for k, v in spec.params().items() if k != "task")
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

    def _log_traceback(self, result: TrialResult, message: str) -> None:
        with tempfile.TemporaryDirectory(prefix="lstm-models-") as tmp:
            path = Path(tmp) / "traceback.txt"
            path.write_text(message, encoding="utf-8")
            self.tracker.log_artifact(result.run_id, path)

    def abort(self, status: str) -> None:
        """Close the running trial's run as KILLED (a signal) or FAILED (an error)."""
        result, self.current = self.current, None
        if result is None:
            return
        result.status = status
        result.error = INTERRUPTED if status == "KILLED" else "the sweep stopped with an error while this trial ran"
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
            result.status, result.error = "FAILED", DIED
            self.tracker.set_tags(result.run_id, {"status": "FAILED", "error": DIED})
            self.tracker.end_run(result.run_id, "FAILED")
            self.save(result)
        known = {t.run_id for t in self.trials}
        for run_id in self.tracker.running_trials(self.state.parent_run_id):
            if run_id not in known:  # opened by a process killed before it recorded the trial
                self.tracker.set_tags(run_id, {"status": "FAILED", "error": DIED})
                self.tracker.end_run(run_id, "FAILED")
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
    def __init__(self, sweep: _Sweep, epochs: int):
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


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _error_line(message: str | None) -> str:
    """The exception line of a formatted traceback (``TrialFailed: loss became nan ...``)."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith(" ")]
    rest = lines[frames[-1] + 1:] if frames else lines
    return (rest[0] if rest else lines[-1] if lines else "").strip()


def run_sweep(spec: SweepSpec, data, tracker, output_dir: Path, workdir: Path | None = None,
              tags: dict | None = None, log: Callable[[str], None] = print, resume: bool = False,
              fresh: bool = False, guard: Deferral | None = None,
              clock: Callable[[], float] = time.monotonic) -> SweepResult:
    """Search, track, evaluate the best model of each cell on test, export the best one.

    Args:
        spec: the validated sweep spec (command-line overrides applied).
        data: the loaded splits.
        tracker: an `MLflowTracker` or `NullTracker`.
        output_dir: exports go to ``output_dir / spec.name``.
        workdir: the sweep's state folder (``runs/<name>`` from the CLI): state file, Keras
            Tuner's project and checkpoints. None: a temporary folder, and no resume.
        tags: extra tags for the parent run (git commit ...).
        log: where progress lines go.
        resume: continue the sweep recorded in ``workdir`` (see `lstm_models.state.check_start`).
        fresh: replace the sweep recorded in ``workdir`` by a new one; its runs stay in MLflow,
            those it left RUNNING are marked FAILED.
        guard: the `Deferral` the caller's signal handlers raise through.
        clock: seconds, for the time budget.

    Returns:
        A `SweepResult`.

    Reproducibility: trials are seeded from ``spec.tuner.seed``; identical metrics across runs
    on a GPU also need TensorFlow's op determinism, which the CLI turns on there
    (``tf.config.experimental.enable_op_determinism()``); seeded CPU runs repeat bit for bit.
    """
    started = time.perf_counter()
    guard = guard or Deferral()
    with tempfile.TemporaryDirectory(prefix="lstm-models-") as scratch, ExitStack() as stack:
        folder = Path(workdir) if workdir else Path(scratch) / "sweep"
        uri = getattr(tracker, "uri", "none")
        previous = check_start(folder, spec.to_dict(), uri, resume=resume, fresh=fresh)
        stack.enter_context(SweepLock(folder))
        if fresh and previous is not None:
            _close_abandoned(previous, tracker, uri, log)
            discard(folder)
            stack.enter_context(SweepLock(folder))
        state = _open_state(spec, tracker, folder, previous if resume else None, {**data_tags(data), **(tags or {})})
        sweep = _Sweep(spec, data, tracker, log, folder, state, guard, clock)
        parent = state.parent_run_id
        try:
            tuner = make_tuner(spec, sweep, folder)
            if resume:
                sweep.restore(tuner.oracle)
            budget = f", time budget {format_duration(spec.tuner.time_budget)}" if spec.tuner.time_budget else ""
            log(f"sweep {spec.name}: {spec.tuner.kind} search over {', '.join(spec.search.cells.values)}, "
                f"objective {spec.objective} ({spec.direction}), at most {spec.tuner.max_trials} trials "
                f"of at most {spec.tuner.max_epochs} epochs{budget}; state in {folder}")
            try:
                tuner.search(epochs=spec.tuner.max_epochs, verbose=0)
            except SearchDone:
                pass
            result = _finish(spec, sweep, tuner, data, tracker, parent, Path(output_dir), Path(scratch))
            result.stop_reason, result.resumed = sweep.stop_reason, resume
            state.status = FINISHED
            sweep.save()
        except BaseException as exc:
            guard.reset()
            with guard.hold(drop=True):  # a second Ctrl-C must not cut the bookkeeping short
                status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
                sweep.abort(status)
                if parent:
                    tracker.set_tags(parent, {"error": str(exc)[:500] or type(exc).__name__})
                    tracker.end_run(parent, status)
            raise
    result.wall_seconds = time.perf_counter() - started
    return result


def _open_state(spec: SweepSpec, tracker, folder: Path, previous: SweepState | None, tags: dict | None) -> SweepState:
    """Reopen the parent run of a resumed sweep, or start a new one and write its state."""
    if previous is not None:
        previous.spec = spec.to_dict()  # max_trials and time_budget may change on resume
        tracker.reopen_sweep(previous.parent_run_id)
        save_state(folder, previous)
        return previous
    parent_tags = {"dataset": spec.dataset.kind, "task": spec.task, "tuner": spec.tuner.kind,
                   "seed": str(spec.tuner.seed), **(tags or {})}
    parent = tracker.start_sweep(spec.name, f"sweep {spec.name} ({spec.tuner.kind})",
                                 flatten(spec.to_dict()), parent_tags)
    state = SweepState(name=spec.name, parent_run_id=parent, tracking_uri=getattr(tracker, "uri", "none"),
                       spec=spec.to_dict())
    save_state(folder, state)
    return state


def _close_abandoned(previous: SweepState, tracker, uri: str, log: Callable[[str], None]) -> None:
    """Before ``fresh`` replaces a sweep: runs its dead process left RUNNING become FAILED."""
    log(f"starting a fresh sweep: the previous one ({previous.describe()}) is replaced; its runs stay in MLflow")
    if previous.tracking_uri != uri or not previous.parent_run_id:
        return
    reason = "abandoned: replaced by a fresh sweep (--fresh) while this run was still open"
    for run_id in tracker.running_trials(previous.parent_run_id):
        tracker.set_tags(run_id, {"status": "FAILED", "error": reason})
        tracker.end_run(run_id, "FAILED")
    if tracker.run_status(previous.parent_run_id) == "RUNNING":
        tracker.set_tags(previous.parent_run_id, {"error": reason})
        tracker.end_run(previous.parent_run_id, "FAILED")


def _finish(spec, sweep: _Sweep, tuner, data, tracker, parent: str, output_dir: Path, scratch: Path) -> SweepResult:
    finished = [t for t in sweep.trials if t.status == "FINISHED"]
    per_cell: dict[str, TrialResult] = {}
    for t in finished:
        if sweep.better(t.objective, per_cell[t.spec.cell].objective if t.spec.cell in per_cell else None):
            per_cell[t.spec.cell] = t
    metric = "accuracy" if spec.task == "classification" else "rmse"
    result = SweepResult(spec=spec, trials=sweep.trials, best=sweep.best, best_per_cell=per_cell,
                         test_metric=metric, parent_run_id=parent, test_size=data.sizes()["test"])
    if sweep.best is None:
        tracker.end_run(parent, "FAILED")
        raise SweepFailed(f"sweep {spec.name}: no trial finished, nothing to export")
    best_model = None
    for cell, trial in sorted(per_cell.items()):
        keras.backend.clear_session()
        model = tuner.load_model(tuner.oracle.get_trial(trial.trial_id))
        test = sweep.pipeline("test", trial.spec)
        scores = model.evaluate(test, return_dict=True, verbose=0)
        trial.test_metrics = {k: float(v) for k, v in scores.items()}
        tracker.log_metrics(trial.run_id, {f"test_{k}": v for k, v in trial.test_metrics.items()})
        if trial is sweep.best:
            best_model = serving_model(model, sweep.inputs)  # raw input in, as exported
            _export(spec, data, trial, best_model, output_dir, result)
    result.baselines = baselines.evaluate(spec, data, best_model, sweep.best.spec.lookback)
    _log_parent(spec, result, tracker, parent, scratch)
    log_inside_views(result, data, tracker, parent, scratch, log=sweep.log,
                     load=lambda t: tuner.load_model(tuner.oracle.get_trial(t.trial_id)))
    tracker.end_run(parent, "FINISHED")
    return result


def _export(spec, data, trial: TrialResult, model, output_dir: Path, result: SweepResult) -> None:
    if isinstance(data, TextSplits):
        sample = data.part("test")[0][:8].astype(str)
        meta = {"task": spec.task, "class_names": list(data.class_names), "input": "a batch of strings"}
    else:
        sample = data.windows("test", trial.spec.lookback)[0][:8]
        meta = {"task": spec.task, "lookback": trial.spec.lookback, "horizon": data.horizon,
                "columns": list(data.columns), "input": "a batch of windows (batch, lookback, features)"}
    meta.update({"sweep": spec.name, "trial": trial.name, "cell": trial.spec.cell,
                 "model_spec": trial.spec.params(), "objective": {spec.objective: trial.objective},
                 "test": trial.test_metrics})
    result.export_dir = export_model(model, output_dir / spec.name, meta, sample)


def _log_parent(spec, result: SweepResult, tracker, parent: str, scratch: Path) -> None:
    metrics = {}
    base = spec.objective.removeprefix("val_")
    for cell, trial in result.best_per_cell.items():
        metrics[f"best_val_{base}_{cell}"] = trial.objective
        for key, value in trial.test_metrics.items():
            metrics[f"test_{key}_{cell}"] = value
    for key, value in result.best.test_metrics.items():
        metrics[f"test_{key}_best"] = value
    if result.baselines is not None:  # test_<metric>_<method>; Keras already gave some of the best's
        metrics.update({k: v for k, v in result.baselines.metrics().items() if k not in metrics})
    tracker.log_metrics(parent, metrics)
    files = scratch / "report"
    files.mkdir(exist_ok=True)
    report.write_leaderboard_csv(result, files / "leaderboard.csv")
    report.plot_objective(result, files / "objective_per_trial.png")
    (files / "spec.yaml").write_text(report.spec_yaml(spec), encoding="utf-8")
    for name in ("leaderboard.csv", "objective_per_trial.png", "spec.yaml"):
        tracker.log_artifact(parent, files / name)
    if result.export_dir is not None:
        tracker.log_artifact(parent, result.export_dir, "savedmodel")
        version = tracker.register_model(parent, "savedmodel", spec.name)
        tracker.set_tags(parent, {"best_trial": result.best.name, "registered_version": version})
