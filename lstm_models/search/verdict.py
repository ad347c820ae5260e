"""After the search, the cell verdict: LSTM, GRU or RNN, beyond the luck of one seed?

Each cell's best configuration is trained again from scratch with ``verdict.seeds`` seeds,
early-stopped on val (best epoch's weights) and scored once on test; ``verdict.match: params``
also trains every other cell with the winner's configuration at the unit count that gives about
the winner's parameter count, so the verdict says whether the cell or the size made the
difference. Every seed run is a nested run of the sweep tagged ``verdict=true``; the statistics
are `lstm_models.tasks.verdict`.

The seed runs are planned as the search ends. A chief's local workers train them meanwhile, while
it scores, exports and draws the views (`lstm_models.search.crew`); in one process the sweep
trains them one after another.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from lstm_models.errors import TrialFailed
from lstm_models.models.build import ModelSpec, serving_model
from lstm_models.search.crew import POLL_SECONDS, Crew, Job, Outcome, Queue
from lstm_models.tasks.paired import metric_of
from lstm_models.tasks.verdict import CellRuns, VerdictTable, compare, plural

SEED_OFFSET = 10_000  # verdict seeds: the spec's seed + 10,000 + i (a trial's: `lstm_models.search.space.trial_seed`)
MATCH_TOLERANCE = 0.10  # a matched model's parameter count within 10% of the target, or it says so


@dataclass
class Verdict:
    """The verdict's tables (``seeds``, then ``matched``) and what it cost."""

    tables: list[VerdictTable] = field(default_factory=list)
    seconds: float = 0.0
    failure: str = ""  # why the verdict stopped short (a seed run's loss diverged)


def seeds_of(spec) -> list[int]:
    """The verdict's seeds: K of them, apart from every trial's."""
    return [spec.tuner.seed + SEED_OFFSET + i for i in range(spec.verdict.seeds)]


@dataclass(frozen=True)
class Plan:
    """The verdict's seed runs, in order: each cell's best configuration with every seed, then
    (``match: params``) every other cell at the winner's parameter count, ``target``."""

    jobs: list[Job]
    target: int = 0


def plan_verdict(sweep, result) -> Plan:
    """The seed runs to train (none if ``seeds`` is 0), said in the sweep's log."""
    spec = sweep.spec
    if spec.verdict.seeds == 0 or not result.best_per_cell:
        return Plan([])
    seeds = seeds_of(spec)
    sweep.log(f"verdict: each cell's best configuration trained again with {plural(len(seeds), 'seed')} "
              f"({', '.join(map(str, seeds))}), early-stopped on val, scored once on test")
    configs, target = [("seeds", t.spec) for _, t in sorted(result.best_per_cell.items())], 0
    if spec.verdict.match == "params" and len(result.best_per_cell) > 1:
        winner = result.best.spec
        target = count_params(winner, sweep.inputs)
        sweep.log(f"verdict: every cell at about {target:,} parameters (the winner's, {winner.label()})")
        configs += [("matched", matched_spec(winner, cell, target, sweep.inputs))
                    for cell in sorted(result.best_per_cell) if cell != winner.cell]
    jobs = [Job(i, kind, model_spec, seed) for i, ((kind, model_spec), seed) in enumerate(product(configs, seeds))]
    return Plan(jobs, target)


def run_verdict(sweep, result, plan: Plan, crew: Crew) -> Verdict:
    """Gather the seed runs (training those no worker takes), compare the cells, return the verdict.

    Args:
        sweep: the sweep's fixed parts (`lstm_models.search.finish.Sweep`); its hypermodel trains.
        result: the search's outcome: the best trial of each cell, the winner.
        plan: `plan_verdict`'s seed runs; crew: the workers that train them, the queue posted.
    """
    verdict = Verdict()
    if not plan.jobs:
        return verdict
    spec, metric, seeds = sweep.spec, sweep.task.test_metric, seeds_of(sweep.spec)
    done = crew.outcomes(lambda job: train_job(sweep, job, crew.queue),
                         lambda job, who, why: _lost(sweep, result, job, who, why))
    failed = next((done[j.index].error for j in plan.jobs if j.index in done and done[j.index].error), "")
    by_cell = _cell_runs([j for j in plan.jobs if j.kind == "seeds"], done)
    if by_cell:
        dependence = sweep.task.test_dependence()  # overlapping forecast windows: block bootstrap
        verdict.tables.append(compare(sweep.task.name, metric, list(by_cell.values()), seeds, "seeds",
                                      seed=spec.tuner.seed, dependence=dependence))
        matched = _cell_runs([j for j in plan.jobs if j.kind == "matched"], done)
        if matched:
            runs = [by_cell[cell] if cell == result.best.spec.cell else matched[cell] for cell in sorted(by_cell)]
            verdict.tables.append(compare(sweep.task.name, metric, runs, seeds, "matched",
                                          target_params=plan.target, seed=spec.tuner.seed, dependence=dependence))
    if failed:  # a seed run diverged: the verdict so far, and why it stops there
        sweep.log(f"verdict stopped: a seed run failed ({failed}); its runs are FAILED in the tracking store")
        verdict.failure = failed
    verdict.seconds = time.perf_counter() - crew.started
    return verdict


def count_params(spec: ModelSpec, inputs) -> int:
    """The parameter count of the network a spec builds (built, not estimated; a window of one
    step, which has the same weights as any other length and builds faster)."""
    keras.backend.clear_session()
    return int(inputs.network(replace(spec, lookback=1)).count_params())


def matched_spec(winner: ModelSpec, cell: str, target: int, inputs,
                 count: Callable[[ModelSpec, object], int] = count_params) -> ModelSpec:
    """The winner's configuration with ``cell``, every layer's units scaled by one factor so that
    the parameter count comes closest to ``target``."""
    base = replace(winner, cell=cell, **({} if cell == "lstm" else {"unit_forget_bias": True}))
    known: dict[tuple[int, ...], int] = {}

    def at(scale: float) -> ModelSpec:
        return replace(base, units=tuple(max(1, round(u * scale)) for u in winner.units))

    def size(s: ModelSpec) -> int:
        if s.units not in known:
            known[s.units] = count(s, inputs)
        return known[s.units]

    low, high = 1 / 64, 64.0
    for _ in range(24):
        if all(abs(a - b) <= 1 for a, b in zip(at(low).units, at(high).units)):
            break  # neighbouring unit counts: one of the two is the closest
        middle = math.sqrt(low * high)
        if size(at(middle)) < target:
            low = middle
        else:
            high = middle
    return min((at(low), at(high)), key=lambda s: abs(size(s) - target))


def train_job(sweep, job: Job, queue: Queue, worker: str = "") -> Outcome:
    """One seed run, a nested run tagged ``verdict=true`` (and the worker that trained it); its
    outcome is put in ``queue`` as its run closes."""
    tracker, metric, model_spec = sweep.tracker, sweep.task.test_metric, job.spec
    name = f"verdict {job.kind} {model_spec.cell} seed {job.seed}"
    tags = {"verdict": "true", "verdict_kind": job.kind, "verdict_job": str(job.index), "cell": model_spec.cell,
            "seed": str(job.seed), **({"worker": worker} if worker else {})}
    run_id = ""
    try:
        with sweep.guard.hold():  # an interrupt waits until the run exists, then closes it
            run_id = tracker.start_trial(name, {**model_spec.params(), "seed": job.seed}, tags)
        if sweep.dataset:
            tracker.log_dataset(run_id, sweep.dataset)
        keras.backend.clear_session()
        started = time.perf_counter()
        model = sweep.hypermodel.build_spec(model_spec, seed=job.seed)
        history = sweep.hypermodel.fit(None, model, model_spec=model_spec, shuffle_seed=job.seed + 1,
                                       epochs=sweep.spec.tuner.max_epochs, restore_best=True).history
        loss = sweep.task.test_losses(serving_model(model, sweep.inputs), model_spec.lookback)
        score = float(metric_of(sweep.task.name, loss.mean()))
        now = int(time.time() * 1000)
        tracker.log_steps(run_id, [(epoch, {k: v[epoch] for k, v in history.items()}, now)
                                   for epoch in range(len(history.get("loss", [])))])
        objective = history.get(sweep.spec.objective, [])
        tracker.log_metrics(run_id, {f"test_{metric}": score, "param_count": model.count_params(),
                                     "epochs": len(objective), "seconds": time.perf_counter() - started})
        sweep.log(f"  {name}: test {metric} {score:.4f} after {len(objective)} epochs")
    except TrialFailed as exc:
        return _closed(sweep, queue, job, "FAILED", Outcome(run_id=run_id, error=str(exc)))
    except BaseException as exc:
        sweep.guard.reset()
        with sweep.guard.hold(drop=True):  # a second signal (Ctrl-C, then the chief's) must not leave it RUNNING
            if run_id:
                tracker.end_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    return _closed(sweep, queue, job, "FINISHED", Outcome(run_id, score, np.asarray(loss), int(model.count_params())))


def _closed(sweep, queue: Queue, job: Job, status: str, outcome: Outcome) -> Outcome:
    """Close the seed run and put its outcome in the queue, an interrupt held until both are done
    (SQLite's lock is retried): a resumed sweep keeps a FINISHED run's result, so it needs both."""
    with sweep.guard.hold():
        sweep.tracker.end_run(outcome.run_id, status)
        queue.put(job, outcome)
    return outcome


def help_verdict(sweep, jobs_file: Path, worker: str) -> int:
    """A chief's local worker after the search: wait for the verdict's queue, then train the seed
    runs no other process has taken, until none is left (`lstm_models.search.crew`).

    Args:
        sweep: the worker's sweep parts (its tracker joined to the sweep's parent run).
        jobs_file: the chief's queue. worker: this worker's id.

    Returns:
        How many seed runs it trained (0 if its chief exited without a queue).
    """
    queue, chief = Queue(Path(jobs_file).parent), os.getppid()
    while not queue.file.exists():
        if os.getppid() != chief:
            return 0
        time.sleep(POLL_SECONDS)
    _, jobs = queue.read()
    trained = 0
    with sweep.guard.unmasking():
        for job in jobs:
            if queue.stopped():
                break
            if queue.claim(job, worker):
                train_job(sweep, job, queue, worker)
                trained += 1
    return trained


def _cell_runs(jobs: list[Job], done: dict[int, Outcome]) -> dict[str, CellRuns]:
    """Each configuration's seed runs, by cell; none if one of them is missing or failed."""
    if not jobs or any(j.index not in done or done[j.index].error for j in jobs):
        return {}
    out = {}
    for job in jobs:
        runs = out.setdefault(job.spec.cell, CellRuns(job.spec.cell, job.spec.label(), 0, [], [], []))
        outcome = done[job.index]
        runs.n_params = outcome.n_params
        runs.scores.append(outcome.score)
        runs.losses.append(outcome.losses)
        runs.run_ids.append(outcome.run_id)
    for runs in out.values():
        runs.losses = np.stack(runs.losses)
    return out


def _lost(sweep, result, job: Job, worker: str, why: str) -> None:
    """A worker died in a seed run: its run is closed FAILED and ``lost``; the chief runs it again."""
    from lstm_models.search.recorder import fail_runs

    tracker = sweep.tracker
    runs = tracker.running_trials(result.parent_run_id, {"verdict_job": str(job.index), "worker": worker})
    fail_runs(tracker, runs, f"{why} in this seed run; the chief ran it again", {"lost": "true"})
    sweep.log(f"chief: {why} during verdict {job.kind} {job.spec.cell} seed {job.seed}; the chief trains it again")
