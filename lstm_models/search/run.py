"""run_sweep: the one path a sweep takes, from the start checks to the export.

Checks (`lstm_models.search.state.check_start`), determinism, the sweep's state and parent run
(`lstm_models.search.resume`), the task's inputs, Keras Tuner's search through the adapter
(`lstm_models.search.tuner`) with each trial recorded (`lstm_models.search.recorder`) and
limited (`lstm_models.search.limits`), then finishing (`lstm_models.search.finish`).

A sweep survives its process: its state (parent run, spec, one record per trial) and Keras
Tuner's project live in a folder (`lstm_models.search.state`), so ``mode="resume"`` continues an
interrupted or killed sweep without rerunning a finished trial.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from lstm_models.data.splits import dataset_record
from lstm_models.errors import ConfigError, SearchDone, TrackingLost
from lstm_models.interrupt import Deferral
from lstm_models.search.crew import Queue
from lstm_models.search.limits import Limits
from lstm_models.search.recorder import TrialRecorder, TrialResult
from lstm_models.search.resume import close_abandoned, open_state, restore_trials
from lstm_models.search.state import (FINISHED, ORACLE_FILE, TUNER_PROJECT, SweepLock, check_start, discard,
                                      is_locked, save_state, still_training)
from lstm_models.spec.rules import format_duration
from lstm_models.spec.sweep import SweepSpec
from lstm_models.tracking.tracker import Tracker

from lstm_models.search.chief import LocalWorkers, WorkerPlan, run_chief, sweep_tags
from lstm_models.search.trial_runs import still_with_workers

if TYPE_CHECKING:
    from lstm_models.search.finish import SweepResult

MODES = ("new", "resume", "fresh")


@dataclass(frozen=True)
class SweepPaths:
    """Where a sweep writes: exports to ``output / <name>``; its state to ``workdir`` (``runs/<name>``
    from the CLI: state file, Keras Tuner's project and checkpoints). None: a temporary folder, no resume."""

    output: Path
    workdir: Path | None = None


@dataclass(frozen=True)
class Hooks:
    """How a sweep talks to its caller: progress lines, signals, the clock, ended trials, parent tags."""

    log: Callable[[str], None] = print
    guard: Deferral = field(default_factory=Deferral)  # the caller's signal handlers raise through it
    clock: Callable[[], float] = time.monotonic  # seconds, for the time budget
    on_trial: Callable[[TrialResult], None] | None = None  # each trial's result as it ends
    tags: dict = field(default_factory=dict)  # extra tags of the parent run (git commit ...)
    data_seconds: float = 0.0  # how long the caller took to load the data (the parent's time/data_s)


def run_sweep(spec: SweepSpec, data, tracker: Tracker, paths: SweepPaths, mode: str = "new",
              hooks: Hooks | None = None, workers: WorkerPlan | None = None) -> SweepResult:
    """Search, track, evaluate the best model of each cell on test, export the best one.

    Args:
        spec: the validated sweep spec (command-line overrides applied).
        data: the loaded splits.
        tracker: an `MLflowTracker` or `NullTracker`.
        paths: where exports and the sweep's state go.
        mode: ``new``; ``resume`` the sweep recorded in ``paths.workdir``; or ``fresh``: replace
            it by a new one (its runs stay in MLflow, those it left RUNNING are marked FAILED).
        hooks: progress lines, signals, clock, per-trial callback, parent tags.
        workers: train in worker processes (`lstm_models.search.chief`); None: in this one.

    Returns:
        A `SweepResult`.

    Reproducibility: trials are seeded from ``spec.tuner.seed`` and their values
    (`lstm_models.search.space.trial_seed`). Seeded CPU runs repeat bit for bit; on a GPU op
    determinism is turned on here too (Keras then refuses XLA).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    hooks = hooks or Hooks()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstm-models-") as scratch, ExitStack() as stack:
        folder = Path(paths.workdir) if paths.workdir else Path(scratch) / "sweep"
        dataset = dataset_record(data, spec.dataset.source())
        previous = check_start(folder, spec.to_dict(), tracker.uri, resume=mode == "resume", fresh=mode == "fresh",
                               data=dataset["digest"])
        resumed = previous if mode == "resume" else None
        _check_same_role(resumed, workers, folder)
        oracle = resumed.oracle if resumed else ""
        if workers and not is_locked(folder):  # a port in use refused before anything is written
            workers.bound(oracle)  # (a running sweep's own is refused by its lock); bound again below
        stack.enter_context(SweepLock(folder))
        if mode == "fresh" and previous is not None:
            close_abandoned(previous, tracker, hooks.log)
            discard(folder)  # keeps the lock this process holds
        local = None
        if workers:  # its local workers train the verdict's seed runs too (`lstm_models.search.crew`)
            jobs = Queue.emptied(folder, keep=resumed is not None).file  # a resumed sweep keeps finished ones
            workers = replace(workers.bound(oracle), jobs=jobs)
            earlier, found = {}, None
            if resumed:  # the trials whose runs are still RUNNING: their workers may reconnect
                found = still_with_workers(tracker, resumed.parent_run_id)
                earlier = still_training(folder / TUNER_PROJECT / ORACLE_FILE, set(found.running))
            local = stack.enter_context(LocalWorkers(workers, earlier, found))
        from lstm_models.search.space import set_determinism

        set_determinism()  # TensorFlow loads here, once the checks have passed (and the workers load theirs)
        from lstm_models.tasks import task_for

        task = task_for(data)
        parallel = sweep_tags(workers, spec.to_dict(), dataset["digest"]) if workers else {}
        state = open_state(spec, tracker, folder, resumed, {**task.tags(), **hooks.tags, **parallel}, dataset["digest"])
        if workers:
            tracker.set_tags(state.parent_run_id, parallel)  # a resumed chief may listen elsewhere
            state.oracle, state.workers = workers.address, workers.count
            save_state(folder, state)  # a chief stopped before any trial ended is still resumed as one
        if resumed is None:
            tracker.log_dataset(state.parent_run_id, dataset)
        recorder = TrialRecorder(spec.objective, spec.direction, spec.tuner.max_trials, tracker, state, folder,
                                 hooks.log, hooks.on_trial, dataset=dataset,
                                 system_metrics=spec.tracking.system_metrics)
        try:
            with hooks.guard.unmasking():
                result = _search_and_finish(spec, task, tracker, recorder, folder, paths, mode, hooks, local)
            state.status = FINISHED
            recorder.save()
        except BaseException as exc:
            _abort(exc, recorder, tracker, hooks.guard)
            raise
    result.wall_seconds = time.perf_counter() - started
    return result


def _search_and_finish(spec: SweepSpec, task, tracker: Tracker, recorder: TrialRecorder, folder: Path,
                       paths: SweepPaths, mode: str, hooks: Hooks, workers: LocalWorkers | None) -> SweepResult:
    import keras_tuner as kt

    from lstm_models.search.finish import Sweep, SweepResult, best_per_cell, finish
    from lstm_models.search.hypermodel import SweepHyperModel
    from lstm_models.search.timing import SWEEP_PHASES, Phases
    from lstm_models.search.tuner import make_tuner
    from lstm_models.search.warm import long_lived_objects_frozen

    phases = Phases(names=SWEEP_PHASES)
    phases.add("data", hooks.data_seconds)
    with phases.timed("inputs"):
        inputs = task.make_inputs(spec.dataset.options.get("max_tokens"))
        batches = task.batches(inputs)
    hypermodel = SweepHyperModel(spec, inputs, batches, hooks.guard)
    limits = Limits(spec.name, spec.tuner.max_trials, spec.tuner.time_budget, hooks.clock, hooks.log)
    objective = kt.Objective(spec.objective, direction=spec.direction)
    tuner = make_tuner(spec.tuner, objective, hypermodel, recorder, limits, hooks.guard, folder,
                       "chief" if workers else "single")
    with long_lived_objects_frozen():
        with phases.timed("search"):
            searched = _search(spec, tuner, recorder, limits, hypermodel.model_spec, folder, mode, hooks, workers)
        result = SweepResult(spec=spec, trials=recorder.trials, best=recorder.best,
                             best_per_cell=best_per_cell(recorder.trials, spec.direction),
                             test_metric=task.test_metric, parent_run_id=recorder.state.parent_run_id,
                             test_size=task.data.sizes()["test"], stop_reason=limits.stop_reason,
                             resumed=mode == "resume")
        sweep = Sweep(spec, task, inputs, batches, tracker, hooks.log, recorder.dataset or {}, hypermodel, phases,
                      hooks.guard, folder, searched)
        finish(sweep, result, lambda t: tuner.load_model(tuner.oracle.get_trial(t.trial_id)), paths.output)
    return result


def _search(spec: SweepSpec, tuner, recorder: TrialRecorder, limits: Limits, model_spec: Callable, folder: Path,
            mode: str, hooks: Hooks, workers: LocalWorkers | None) -> dict:
    """Keras Tuner's search, in this process or served to workers; a resume picks up its trials first.
    Returns the local workers still running (`run_chief`), none in one process."""
    if mode == "resume" and workers:
        from lstm_models.search.oracle import adopt_unended

        adopted = adopt_unended(tuner.oracle, set(workers.earlier.values()), workers.found.unrecorded, workers.found.recording)
        hooks.log(f"resuming sweep {spec.name} as its chief: {len(tuner.oracle.trials)} trials so far, "
                  f"{len(adopted)} still with their workers")
    elif mode == "resume":
        restore_trials(recorder, tuner.oracle, model_spec, folder, spec.name)
    budget = f", time budget {format_duration(spec.tuner.time_budget)}" if spec.tuner.time_budget else ""
    hooks.log(f"sweep {spec.name}: {spec.tuner.kind} search over {', '.join(spec.search.cells.values)}, "
              f"objective {spec.objective} ({spec.direction}), at most {spec.tuner.max_trials} trials "
              f"of at most {spec.tuner.max_epochs} epochs{budget}; state in {folder}")
    if workers:
        # Keras Tuner reloads a project only if its tuner file exists; a chief, which never trains,
        # writes it here (after `adopt_unended` read the oracle's saved state).
        tuner.save()
        if spec.tuner.time_budget:
            tuner.oracle.deadline = time.monotonic() + spec.tuner.time_budget
        searched = run_chief(workers, tuner.oracle, recorder, model_spec, spec.tuner.worker_timeout, hooks.log)
        if tuner.oracle.deadline and time.monotonic() >= tuner.oracle.deadline and recorder.counted() < spec.tuner.max_trials:
            limits.stop_reason = (f"time budget {format_duration(spec.tuner.time_budget)} spent after "
                                  f"{recorder.counted()} of {spec.tuner.max_trials} trials")
        return searched
    try:
        tuner.search(epochs=spec.tuner.max_epochs, verbose=0)
    except SearchDone:
        pass
    return {}


def _check_same_role(previous, workers: WorkerPlan | None, folder: Path) -> None:
    """A sweep whose trials workers trained is resumed by a chief, and a single process's by one."""
    if previous is not None and previous.oracle and workers is None:
        raise ConfigError(f"--resume: the sweep in {folder} ran with workers (its chief served {previous.oracle}); "
                          "resume it with --workers N or --chief HOST:PORT")


def _abort(exc: BaseException, recorder: TrialRecorder, tracker: Tracker, guard: Deferral) -> None:
    """Close the running trial and the parent run: KILLED by a signal, FAILED by an error."""
    guard.reset()
    if isinstance(exc, TrackingLost):  # its runs stay RUNNING: --resume closes them as lost
        return
    with guard.hold(drop=True):  # a second Ctrl-C must not cut the bookkeeping short
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        recorder.abort(status)
        parent = recorder.state.parent_run_id
        if parent:
            tracker.set_tags(parent, {"error": str(exc)[:500] or type(exc).__name__})
            tracker.end_run(parent, status)
