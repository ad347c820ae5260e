"""After the search, the cell verdict: LSTM, GRU or RNN, beyond the luck of one seed?

Each cell's best configuration is trained again from scratch with ``verdict.seeds`` seeds,
early-stopped on val (best epoch's weights) and scored once on test; ``verdict.match: params``
also trains every other cell with the winner's configuration at the unit count that gives about
the winner's parameter count, so the verdict says whether the cell or the size made the
difference. Every seed run is a nested run of the sweep tagged ``verdict=true``; the statistics
are `lstm_models.tasks.verdict`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import keras
import numpy as np

from lstm_models.errors import TrialFailed
from lstm_models.models.build import ModelSpec, serving_model
from lstm_models.tasks.paired import metric_of
from lstm_models.tasks.verdict import CellRuns, VerdictTable, compare, plural

SEED_OFFSET = 10_000  # verdict seeds never coincide with a trial's (the spec's seed + trial id)
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


def run_verdict(sweep, result) -> Verdict:
    """Train the seed runs, compare the cells, and return the verdict (empty if ``seeds`` is 0).

    Args:
        sweep: the sweep's fixed parts (`lstm_models.search.finish.Sweep`); its hypermodel trains.
        result: the search's outcome: the best trial of each cell, the winner.
    """
    spec, started, hypermodel = sweep.spec, time.perf_counter(), sweep.hypermodel
    verdict = Verdict()
    if spec.verdict.seeds == 0 or not result.best_per_cell:
        return verdict
    seeds, metric = seeds_of(spec), sweep.task.test_metric
    sweep.log(f"verdict: each cell's best configuration trained again with {plural(len(seeds), 'seed')} "
              f"({', '.join(map(str, seeds))}), early-stopped on val, scored once on test")
    try:
        by_cell = {cell: _cell_runs(sweep, hypermodel, t.spec, seeds, "seeds")
                   for cell, t in sorted(result.best_per_cell.items())}
        verdict.tables.append(compare(sweep.task.name, metric, list(by_cell.values()), seeds, "seeds",
                                      seed=spec.tuner.seed))
        if spec.verdict.match == "params" and len(by_cell) > 1:
            winner = result.best.spec
            target = count_params(winner, sweep.inputs)
            sweep.log(f"verdict: every cell at about {target:,} parameters (the winner's, {winner.label()})")
            matched = [by_cell[cell] if cell == winner.cell else
                       _cell_runs(sweep, hypermodel, matched_spec(winner, cell, target, sweep.inputs), seeds,
                                  "matched") for cell in sorted(by_cell)]
            verdict.tables.append(compare(sweep.task.name, metric, matched, seeds, "matched",
                                          target_params=target, seed=spec.tuner.seed))
    except TrialFailed as exc:  # a seed run diverged: the verdict so far, and why it stops there
        sweep.log(f"verdict stopped: a seed run failed ({exc}); its runs are FAILED in the tracking store")
        verdict.failure = str(exc)
    verdict.seconds = time.perf_counter() - started
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


def _cell_runs(sweep, hypermodel, model_spec: ModelSpec, seeds: list[int], kind: str) -> CellRuns:
    """Train one configuration once per seed; each a nested run tagged ``verdict=true``."""
    scores, losses, run_ids, n_params = [], [], [], 0
    for seed in seeds:
        score, loss, run_id, n_params = _seed_run(sweep, hypermodel, model_spec, seed, kind)
        scores.append(score)
        losses.append(loss)
        run_ids.append(run_id)
    return CellRuns(model_spec.cell, model_spec.label(), n_params, scores, np.stack(losses), run_ids)


def _seed_run(sweep, hypermodel, model_spec: ModelSpec, seed: int, kind: str):
    tracker, metric = sweep.tracker, sweep.task.test_metric
    name = f"verdict {kind} {model_spec.cell} seed {seed}"
    run_id = tracker.start_trial(name, {**model_spec.params(), "seed": seed},
                                 {"verdict": "true", "verdict_kind": kind, "cell": model_spec.cell, "seed": str(seed)})
    if sweep.dataset:
        tracker.log_dataset(run_id, sweep.dataset)
    try:
        keras.backend.clear_session()
        started = time.perf_counter()
        model = hypermodel.build_spec(model_spec, seed=seed)
        history = hypermodel.fit(None, model, model_spec=model_spec, shuffle_seed=seed + 1,
                                 epochs=sweep.spec.tuner.max_epochs, restore_best=True).history
        loss = sweep.task.test_losses(serving_model(model, sweep.inputs), model_spec.lookback)
        score = float(metric_of(sweep.task.name, loss.mean()))
        for epoch in range(len(history.get("loss", []))):
            tracker.log_metrics(run_id, {k: v[epoch] for k, v in history.items()}, step=epoch)
        objective = history.get(sweep.spec.objective, [])
        tracker.log_metrics(run_id, {f"test_{metric}": score, "param_count": model.count_params(),
                                     "epochs": len(objective), "seconds": time.perf_counter() - started})
        sweep.log(f"  {name}: test {metric} {score:.4f} after {len(objective)} epochs")
    except BaseException as exc:
        tracker.end_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    tracker.end_run(run_id, "FINISHED")
    return score, loss, run_id, int(model.count_params())
