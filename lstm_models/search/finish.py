"""After the search: score the best model of each cell once on test, export the best, report.

The baselines are scored on the same test data. The best model of each cell is logged as an
MLflow model of its trial run; the exported one is also the parent run's and is registered
under the sweep's name (alias ``champion`` when it beats the holder). The parent run gets the
leaderboard (also as its description), the plot, the spec, and the views inside the best
models. Finishing takes the search's outcome and a way to load a trial's best model, nothing of
the tuner.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras

from lstm_models.errors import SweepFailed
from lstm_models.export import discard_staged, export_model, publish, stage_export, to_tensor
from lstm_models.inspect.views import log_inside_views
from lstm_models.interrupt import Deferral
from lstm_models.models.build import serving_model
from lstm_models.search.recorder import TrialResult, better
from lstm_models.search.timing import Phases
from lstm_models.search.crew import Crew, Queue
from lstm_models.search.verdict import plan_verdict, run_verdict
from lstm_models.spec.sweep import SweepSpec
from lstm_models.tasks.baselines import Baselines
from lstm_models.tracking import report, verdict_report
from lstm_models.tracking.tracker import Tracker


@dataclass(frozen=True)
class Sweep:
    """The fixed parts of one sweep, as finishing needs them."""

    spec: SweepSpec
    task: Any  # a task from `lstm_models.tasks.task_for`
    inputs: Any  # the task's model inputs
    batches: Callable  # (part, ModelSpec) -> tf.data.Dataset
    tracker: Tracker
    log: Callable[[str], None]
    dataset: dict = field(default_factory=dict)  # `lstm_models.data.splits.dataset_record`
    hypermodel: Any = None  # builds and trains a ModelSpec: the verdict's seed runs
    phases: Phases = field(default_factory=Phases)  # the sweep's clock: the search's phases, then finishing's
    guard: Deferral = field(default_factory=Deferral)  # the sweep's interrupts (`lstm_models.interrupt`)
    folder: Path | None = None  # the sweep's folder: the verdict's queue (`lstm_models.search.crew`)
    workers: dict = field(default_factory=dict)  # a chief's local workers, searched: they train the verdict


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
    baselines: Baselines | None = None  # baselines and the exported model on the same test data
    stop_reason: str = ""  # why the search ended before max_trials (time budget), else empty
    resumed: bool = False
    registration: dict = field(default_factory=dict)  # `Tracker.register_model`'s answer, and ``name``
    verdict: Any = None  # `lstm_models.search.verdict.Verdict`: the cells trained again with K seeds
    phases: dict[str, float] = field(default_factory=dict)  # the sweep's ``time/<phase>_s`` (`search.timing`)


def best_per_cell(trials: list[TrialResult], direction: str) -> dict[str, TrialResult]:
    """The finished trial with the best objective, per cell type."""
    per_cell: dict[str, TrialResult] = {}
    for t in trials:
        if t.status == "FINISHED" and better(direction, t.objective, per_cell[t.spec.cell].objective
                                             if t.spec.cell in per_cell else None):
            per_cell[t.spec.cell] = t
    return per_cell


def finish(sweep: Sweep, result: SweepResult, load: Callable[[TrialResult], keras.Model], output_dir: Path) -> None:
    """Score, export, log the models, compare with the baselines, register, and close the parent run.

    Args:
        sweep: the sweep's fixed parts.
        result: the search's outcome (trials, best, parent run); filled in here.
        load: trial -> its best Keras model.
        output_dir: the export goes to ``output_dir / spec.name``.
    """
    crew, target = Crew(sweep.log, sweep.workers), Path(output_dir) / sweep.spec.name
    try:
        with sweep.phases.timed("verdict"):  # the chief's local workers train it while this process goes on
            plan = plan_verdict(sweep, result)
            crew.post(Queue.create(sweep.folder, result.parent_run_id, plan.jobs, keep=result.resumed), plan.jobs)
        if result.best is None:  # run_sweep closes the parent run as FAILED
            raise SweepFailed(f"sweep {sweep.spec.name}: no trial finished, nothing to export")
        _finish(sweep, result, load, target, plan, crew)
    except BaseException:
        crew.close(wait=False)
        if result.export_dir is not None and result.export_dir != target:  # a sweep that did not finish
            discard_staged(result.export_dir)  # exports nothing (its export was staged)
        raise
    crew.close(wait=True)


def _finish(sweep: Sweep, result: SweepResult, load: Callable[[TrialResult], keras.Model], target: Path,
            plan, crew) -> None:
    spec, tracker, parent, timed = sweep.spec, sweep.tracker, result.parent_run_id, sweep.phases.timed
    best_model, best_id, models = None, "", {}
    with tempfile.TemporaryDirectory(prefix="lstm-models-") as scratch:
        for cell, trial in sorted(result.best_per_cell.items()):
            with timed("test"):
                model = models[cell] = load(trial)  # in a fresh session
                scores = model.evaluate(sweep.batches("test", trial.spec), return_dict=True, verbose=0)
                trial.test_metrics = {k: float(v) for k, v in scores.items()}
                tracker.log_metrics(trial.run_id, {f"test_{k}": v for k, v in trial.test_metrics.items()})
            if trial is not result.best and not tracker.enabled:
                continue
            with timed("export"):
                served = serving_model(model, sweep.inputs)  # raw input in, as exported
                best = trial is result.best  # staged beside its target until the sweep has finished
                folder, sample = _export(sweep, trial, served, target if best else Path(scratch) / cell, stage=best)
                model_id = tracker.log_model(trial.run_id, f"{spec.name}-{cell}", folder, sample,
                                             served(to_tensor(sample), training=False),
                                             also=(parent,) if trial is result.best else ())
            if trial is result.best:
                best_model, best_id, result.export_dir = served, model_id, folder
    with timed("baselines"):
        result.baselines = sweep.task.baselines(best_model, spec.dataset.options.get("max_tokens"), spec.tuner.seed,
                                                result.best.spec.lookback)
    with timed("views"):
        log_inside_views(result, sweep.task, tracker, models, sweep.log, sweep.guard)
    with timed("verdict"):
        result.verdict = run_verdict(sweep, result, plan, crew)
    with timed("report"), tempfile.TemporaryDirectory(prefix="lstm-models-") as scratch:
        _log_parent(sweep, result, Path(scratch))
    # The model registered, the parent run FINISHED and the export in place, or none (an error: FAILED;
    # a signal waits): a champion registered from a sweep stopped here served what no export held.
    with sweep.guard.hold():
        if best_id:
            with timed("register"):
                _register(sweep, result, best_id)
        result.phases = sweep.phases.metrics()
        tracker.log_metrics(parent, result.phases)
        tracker.end_run(parent, "FINISHED")
        result.export_dir = publish(result.export_dir, target)


def _export(sweep: Sweep, trial: TrialResult, model, target: Path, stage: bool = False) -> tuple[Path, object]:
    """Export a trial's serving model to ``target`` (``stage``: beside it, for `publish`); the folder
    and the raw sample it was checked on."""
    spec = sweep.spec
    meta, sample = sweep.task.export_meta(trial.spec)
    meta.update({"sweep": spec.name, "trial": trial.name, "cell": trial.spec.cell,
                 "model_spec": trial.spec.params(), "objective": {spec.objective: trial.objective},
                 "test": trial.test_metrics})
    return (stage_export if stage else export_model)(model, target, meta, sample), sample


def _register(sweep: Sweep, result: SweepResult, model_id: str) -> None:
    """The exported model as a new version of the sweep's model; ``champion`` if it beats the holder."""
    metric = result.test_metric
    score = {"task": sweep.task.name, "metric": metric, "value": result.best.test_metrics[metric],
             "direction": "max" if "accuracy" in metric else "min",
             "test_digest": sweep.dataset.get("test_digest", "")}
    answer = sweep.tracker.register_model(sweep.spec.name, model_id, result.best.run_id, score)
    result.registration = {**answer, "name": sweep.spec.name}
    sweep.tracker.set_tags(result.parent_run_id, {"registered_version": answer["version"],
                                                  "champion_version": answer["champion"]})


def _log_parent(sweep: Sweep, result: SweepResult, scratch: Path) -> None:
    spec, tracker, parent = sweep.spec, sweep.tracker, result.parent_run_id
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
    verdict = result.verdict.tables if result.verdict else []
    metrics.update(verdict_report.metrics(result.verdict) if verdict else {})
    tracker.log_metrics(parent, metrics)
    files = scratch / "report"
    files.mkdir(exist_ok=True)
    report.write_leaderboard_csv(result, files / "leaderboard.csv")
    report.plot_objective(result, files / "objective_per_trial.png")
    (files / "spec.yaml").write_text(report.spec_yaml(spec), encoding="utf-8")
    names = ["leaderboard.csv", "objective_per_trial.png", "spec.yaml"]
    if verdict:
        names += [verdict_report.write_csv(result.verdict, files / "verdict.csv").name,
                  verdict_report.plot(result.verdict, result.baselines, files / "verdict.png").name]
    for name in names:
        tracker.log_artifact(parent, files / name)
    tracker.set_tags(parent, {"best_trial": result.best.name, "mlflow.note.content": report.leaderboard_markdown(result),
                              **verdict_report.tags(result.verdict)})
