"""The baselines beside every sweep, and the verdict: does the exported model beat them?

Each task scores its own baselines (`lstm_models.tasks.text`, `lstm_models.tasks.series`) on
the test data the models are scored on; `Baselines` holds every method's scores, the exported
model's (``best``) among them, and compares the model with the best baseline on the sweep's
test metric (RMSE or accuracy) by a paired test on the same test examples
(`lstm_models.tasks.paired`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lstm_models.tasks.paired import paired_p

LEVEL_P = 0.05  # a difference with a larger p-value is called level


@dataclass
class Baselines:
    """Every method's test scores, the exported model's (``best``) among them."""

    task: str
    metric: str  # the one the verdict compares: rmse or accuracy
    scores: dict[str, dict[str, float]]
    notes: dict[str, str] = field(default_factory=dict)
    windows: int = 0
    losses: dict[str, np.ndarray] = field(default_factory=dict)  # per test example: 0/1 errors or squared errors
    horizon: int = 1

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    @property
    def unit(self) -> str:
        """What the test set counts: texts are examples, forecasts are windows."""
        return "examples" if self.higher_is_better else "windows"

    def metrics(self) -> dict[str, float]:
        """``test_<metric>_<method>``, as logged on the parent run."""
        return {f"test_{m}_{method}": v for method, row in self.scores.items() for m, v in row.items()}

    def best_baseline(self) -> str:
        """The baseline with the best test score on ``metric``."""
        sign = -1.0 if self.higher_is_better else 1.0
        candidates = [m for m in self.scores if m != "best" and math.isfinite(self.scores[m][self.metric])]
        return min(candidates, key=lambda m: sign * self.scores[m][self.metric])

    def model_wins(self) -> bool:
        model, base = self.scores["best"][self.metric], self.scores[self.best_baseline()][self.metric]
        return model > base if self.higher_is_better else model < base

    def paired(self, method: str) -> tuple[float, str]:
        """The paired test of the model against ``method`` on the same test examples: (p, test name)."""
        return paired_p(self.task, self.losses["best"], self.losses[method], self.horizon)

    def verdict(self, cell: str) -> str:
        """One plain sentence: does the best recurrent model beat the best baseline, beyond chance?"""
        base = self.best_baseline()
        model, other = self.scores["best"][self.metric], self.scores[base][self.metric]
        head = f"The best recurrent model ({cell}, test {self.metric} {model:.4f})"
        p, test = self.paired(base)
        evidence = f"the difference, {model - other:+.4f}, on the same {self.windows} test {self.unit}: {test}, p = {p:.2g}"
        if p >= LEVEL_P:
            return f"{head} is level with the best baseline ({base}, test {self.metric} {other:.4f}): {evidence}."
        word = "beats" if self.model_wins() else "does NOT beat"
        return f"{head} {word} the best baseline ({base}, test {self.metric} {other:.4f}): {evidence}."
