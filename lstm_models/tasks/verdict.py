"""The cell verdict's statistics: per-cell means and intervals over seeds, paired comparisons.

Each cell is trained with the same K seeds and scored on the same test examples (or windows);
`compare` turns those runs into one table: each cell's mean test metric with a 95% bootstrap
interval, its difference from the best cell with an interval and a p-value (a paired bootstrap
over the test examples and the seeds, `lstm_models.tasks.paired.seed_bootstrap`), and one
sentence. No TensorFlow here: the runs come in as numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstm_models.tasks.baselines import LEVEL_P
from lstm_models.tasks.paired import (BOOTSTRAP_DRAWS, block_length, bootstrap_p, metric_of, percentile_interval,
                                     seed_bootstrap)

TEST_NAME = "paired bootstrap over the test examples and seeds"


@dataclass
class CellRuns:
    """One cell's K seed runs of one configuration: per-seed test scores and per-example losses."""

    cell: str
    label: str  # the configuration, e.g. ``lstm 2x64 bi do0.2``
    n_params: int
    scores: list[float]
    losses: np.ndarray  # (seeds, examples)
    run_ids: list[str] = field(default_factory=list)


@dataclass
class Row:
    """A cell in the verdict table; ``diff`` and its interval and ``p`` are against the best cell."""

    runs: CellRuns
    mean: float
    low: float
    high: float
    diff: float = 0.0
    diff_low: float = 0.0
    diff_high: float = 0.0
    p: float = 1.0


@dataclass
class VerdictTable:
    """Cells ranked best first, their pairwise p-values and the sentence that reads them."""

    kind: str  # ``seeds`` or ``matched``
    task: str
    metric: str
    seeds: list[int]
    examples: int
    rows: list[Row]
    pairs: dict[tuple[str, str], float]
    target_params: int = 0  # matched: the winner's parameter count
    unit: str = "examples"
    block: int = 1  # how many consecutive test examples the bootstrap draws together (a series' windows)

    @property
    def best(self) -> Row:
        return self.rows[0]

    def sentence(self) -> str:
        """The verdict in one sentence, e.g. ``GRU and LSTM are level (...); both beat RNN (...)``."""
        best, rest = self.rows[0], self.rows[1:]
        level = [r for r in rest if r.p >= LEVEL_P]
        beaten = [r for r in rest if r.p < LEVEL_P]
        name = best.runs.cell.upper()
        if not rest:
            return f"{name} is the only cell trained."
        if not level:
            said = f"{name} beats " + " and ".join(f"{r.runs.cell.upper()} ({r.runs.cell.upper()} - {name} "
                                                   f"{_diff(r)})" for r in beaten)
            return said + self._how()
        group = [best] + level
        said = (f"{_names([r.runs.cell for r in group])} are level ("
                + "; ".join(f"{r.runs.cell.upper()} - {name} {_diff(r)}" for r in level) + ")")
        for loser in beaten:
            winners = [g for g in group if self._beats(g, loser)]
            who = "all" if len(winners) == len(group) > 2 else "both" if len(winners) == len(group) == 2 else None
            subject = who or _names([w.runs.cell for w in winners]) or name
            verb = "beat" if len(winners) > 1 else "beats"
            said += f"; {subject} {verb} {loser.runs.cell.upper()} ({loser.runs.cell.upper()} - {name} {_diff(loser)})"
        return said + self._how()

    def _how(self) -> str:
        """How the sentence was reached: the test, the seeds and the test examples."""
        blocks = f" (drawn in blocks of {self.block})" if self.block > 1 else ""
        return f": {TEST_NAME}, {plural(len(self.seeds), 'seed')} x {self.examples} test {self.unit}{blocks}."

    def _beats(self, a: Row, b: Row) -> bool:
        higher = self.task == "classification"
        better = a.mean > b.mean if higher else a.mean < b.mean
        return better and self.pairs.get((a.runs.cell, b.runs.cell), 1.0) < LEVEL_P


def compare(task: str, metric: str, runs: list[CellRuns], seeds: list[int], kind: str = "seeds",
            target_params: int = 0, draws: int = BOOTSTRAP_DRAWS, seed: int = 0, dependence: int = 0) -> VerdictTable:
    """Rank the cells by their mean test metric and compare each with the best, paired.

    Args:
        task: ``classification`` (accuracy, higher is better) or ``forecasting`` (RMSE).
        metric: the test metric's name, for the table.
        runs: one `CellRuns` per cell, all over the same seeds and test examples.
        seeds: the seeds every cell was trained with.
        kind: ``seeds`` (each cell's best configuration) or ``matched`` (matched parameter counts).
        target_params: the parameter count matched to (``matched``).
        draws: bootstrap replicates; seed: their seed.
        dependence: the task's `test_dependence` (0: independent examples; a series' horizon).
    """
    reps = seed_bootstrap(task, {r.cell: r.losses for r in runs}, draws, seed, dependence)
    rows = []
    for r in runs:
        mean = float(np.mean(metric_of(task, np.asarray(r.losses, "float64").mean(axis=1))))
        rows.append(Row(r, mean, *percentile_interval(reps[r.cell])))
    sign = -1.0 if task == "classification" else 1.0
    rows.sort(key=lambda row: sign * row.mean)
    best = rows[0]
    for row in rows[1:]:
        d = reps[row.runs.cell] - reps[best.runs.cell]
        row.diff, (row.diff_low, row.diff_high), row.p = row.mean - best.mean, percentile_interval(d), bootstrap_p(d)
    pairs = {}
    for a in rows:
        for b in rows:
            if a is not b:
                pairs[(a.runs.cell, b.runs.cell)] = bootstrap_p(reps[a.runs.cell] - reps[b.runs.cell])
    return VerdictTable(kind=kind, task=task, metric=metric, seeds=list(seeds), examples=runs[0].losses.shape[1],
                        rows=rows, pairs=pairs, target_params=target_params,
                        unit="examples" if task == "classification" else "windows",
                        block=block_length(runs[0].losses.shape[1], dependence))


def plural(n: int, word: str) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _names(cells: list[str]) -> str:
    names = [c.upper() for c in cells]
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def _diff(row: Row) -> str:
    p = "p < 0.001" if row.p < 0.001 else f"p = {row.p:.2g}"
    return f"{row.diff:+.4f}, 95% CI {row.diff_low:+.4f}..{row.diff_high:+.4f}, {p}"
