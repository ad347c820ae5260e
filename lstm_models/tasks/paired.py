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
    if n < 3 or np.allclose(d, 0.0):
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
