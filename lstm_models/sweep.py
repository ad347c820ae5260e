"""run_sweep: a Keras Tuner search whose every trial is a nested MLflow run, then the export.

Keras Tuner drives the search (`lstm_models.tuners` adapts it) while `lstm_models.trials`
keeps the sweep's trials (tracked runs, limits, progress lines); `lstm_models.finish` then
scores the best model of each cell type once on the test split, exports the best one and
reports. This module opens, resumes or replaces a sweep and runs those steps in order.

A sweep survives its process: its state (parent run, spec, one record per trial) and Keras
Tuner's project live in a folder (`lstm_models.state`), so ``resume=True`` continues an
interrupted or killed sweep without rerunning a finished trial. A trial that was running when
its process stopped is not rerun either: its run is closed (KILLED by a signal, FAILED after a
``kill -9``) and counts towards ``max_trials``, so a sweep has exactly ``max_trials`` trial runs.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from lstm_models.config import SweepSpec
from lstm_models.data.catalog import data_tags
from lstm_models.finish import SweepResult, finish
from lstm_models.interrupt import Deferral
from lstm_models.rules import format_duration
from lstm_models.state import FINISHED, SweepLock, SweepState, check_start, discard, save_state
from lstm_models.tracking import flatten
from lstm_models.trials import SweepRun, TrialResult, fail_runs
from lstm_models.tuners import SearchDone, make_tuner


def run_sweep(spec: SweepSpec, data, tracker, output_dir: Path, workdir: Path | None = None,
              tags: dict | None = None, log: Callable[[str], None] = print, resume: bool = False,
              fresh: bool = False, guard: Deferral | None = None,
              clock: Callable[[], float] = time.monotonic,
              on_trial: Callable[[TrialResult], None] | None = None) -> SweepResult:
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
        on_trial: called with each trial's `TrialResult` as it ends (benchmarks time trials with it).

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
            discard(folder)  # keeps the lock this process holds
        state = _open_state(spec, tracker, folder, previous if resume else None, {**data_tags(data), **(tags or {})})
        sweep = SweepRun(spec, data, tracker, log, folder, state, guard, clock, on_trial)
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
            result = finish(spec, sweep, tuner, data, tracker, parent, Path(output_dir), Path(scratch))
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
    fail_runs(tracker, tracker.running_trials(previous.parent_run_id), reason)
    if tracker.run_status(previous.parent_run_id) == "RUNNING":
        tracker.set_tags(previous.parent_run_id, {"error": reason})
        tracker.end_run(previous.parent_run_id, "FAILED")
