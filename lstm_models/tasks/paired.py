"""Paired tests: do two models differ on the same test examples, beyond chance?

Both compare per-example losses of two models scored on the same examples (or windows):
McNemar's exact test for classification (0/1 errors: only the examples one model gets right
and the other wrong count) and the Diebold-Mariano test for forecasts (squared errors, with
Harvey, Leybourne and Newbold's small-sample correction and a t distribution). A paired test
sees far smaller differences than comparing two scores' separate sampling errors.
"""

from __future__ import annotations

import math

import numpy as np


def mcnemar(errors_a: np.ndarray, errors_b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for 0/1 errors of two classifiers on the same examples."""
    from scipy.stats import binomtest

    a, b = np.asarray(errors_a, bool), np.asarray(errors_b, bool)
    only_b_wrong, only_a_wrong = int(np.sum(~a & b)), int(np.sum(a & ~b))
    discordant = only_a_wrong + only_b_wrong
    if discordant == 0:
        return 1.0
    return float(binomtest(min(only_a_wrong, only_b_wrong), discordant, 0.5).pvalue)


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> float:
    """Two-sided Diebold-Mariano p-value for the per-window losses of two forecasters.

    The long-run variance of the loss difference uses ``horizon - 1`` autocovariances (the
    overlap of h-step forecasts); the statistic gets the Harvey et al. (1997) correction.
    """
    from scipy.stats import t as student

    d = np.asarray(loss_a, "float64") - np.asarray(loss_b, "float64")
    n = len(d)
    if n < 3 or not d.any():  # (not allclose: losses in small units differ by less than its 1e-8)
        return 1.0
    centred = d - d.mean()
    variance = centred @ centred / n
    for lag in range(1, min(horizon, n - 1)):
        variance += 2 * (centred[lag:] @ centred[:-lag]) / n
    if variance <= 0:
        return 1.0
    stat = d.mean() / math.sqrt(variance / n)
    stat *= math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(2 * student.sf(abs(stat), df=n - 1))


def paired_p(task: str, loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> tuple[float, str]:
    """The task's paired test on two models' per-example losses: (p-value, the test's name)."""
    if task == "classification":
        return mcnemar(loss_a, loss_b), "McNemar's exact test"
    return diebold_mariano(loss_a, loss_b, horizon), "Diebold-Mariano test"


BOOTSTRAP_DRAWS = 2000


def metric_of(task: str, mean_loss):
    """The task's test metric from a mean per-example loss: accuracy from 0/1 errors, RMSE from
    squared errors (works on arrays)."""
    return 1.0 - mean_loss if task == "classification" else np.sqrt(mean_loss)


def seed_bootstrap(task: str, losses: dict[str, np.ndarray], draws: int = BOOTSTRAP_DRAWS,
                   seed: int = 0, dependence: int = 0) -> dict[str, np.ndarray]:
    """Paired bootstrap replicates of each model's test metric, averaged over its seeds.

    Args:
        task: ``classification`` or ``forecasting``.
        losses: model -> per-example losses, shape ``(seeds, examples)``; the same examples, and
            the same number of seeds, for every model.
        draws: bootstrap replicates.
        seed: the resampling's seed.
        dependence: 0 for independent examples (sentences, the adding problem's sequences); the
            horizon for a series' consecutive windows, whose targets overlap and whose errors are
            autocorrelated: they are resampled in circular blocks (`block_length`).

    Returns:
        model -> ``draws`` replicates. Every replicate resamples the test examples and the seeds
        once, and applies that same resample to every model, so differences stay paired.
    """
    first = next(iter(losses.values()))
    k, n = first.shape
    rng = np.random.default_rng(seed)
    weights = _example_weights(rng, n, draws, block_length(n, dependence))  # (examples, draws)
    picks = rng.integers(0, k, size=(draws, k))
    return {name: metric_of(task, np.asarray(loss, "float64") @ weights)[picks, np.arange(draws)[:, None]].mean(axis=1)
            for name, loss in losses.items()}


def block_length(n: int, dependence: int) -> int:
    """1 for independent examples; else at least the horizon and n^(1/3) (Politis and Romano's
    rate for a block bootstrap of a weakly dependent series), at most n."""
    return 1 if dependence <= 0 else min(n, max(dependence, math.ceil(n ** (1 / 3))))


def _example_weights(rng: np.random.Generator, n: int, draws: int, block: int) -> np.ndarray:
    """How often each example is drawn in each replicate, over n: (examples, draws). Blocks of
    ``block`` consecutive examples (circular: each example is as likely as any other)."""
    if block == 1:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=draws).T / n
    starts = rng.integers(0, n, size=(draws, -(-n // block)))
    taken = ((starts[:, :, None] + np.arange(block)).reshape(draws, -1)[:, :n] % n)
    counts = np.zeros((draws, n))
    np.add.at(counts, (np.arange(draws)[:, None], taken), 1.0)
    return counts.T / n


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap replicates."""
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p-value of a paired bootstrap: how often the difference's replicates fall on
    either side of zero (1 for identical models, about 2 / draws for one always better)."""
    d, draws = np.asarray(differences), len(differences)
    below, above = (np.sum(d <= 0) + 1) / (draws + 1), (np.sum(d >= 0) + 1) / (draws + 1)
    return float(min(1.0, 2 * min(below, above)))
