"""The baselines beside every sweep, and the verdict: does the exported model beat them?

Each task scores its own baselines (`lstm_models.tasks.text`, `lstm_models.tasks.series`) on
the test data the models are scored on; `Baselines` holds every method's scores, the exported
model's (``best``) among them, and compares the model with the best baseline on the sweep's
test metric (RMSE or accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Baselines:
    """Every method's test scores, the exported model's (``best``) among them."""

    task: str
    metric: str  # the one the verdict compares: rmse or accuracy
    scores: dict[str, dict[str, float]]
    notes: dict[str, str] = field(default_factory=dict)
    windows: int = 0

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

    def accuracy_noise(self) -> float | None:
        """Half-width of a 95% interval on the difference of two accuracies measured on the same
        ``windows`` test examples (normal approximation, unpaired: on the safe side)."""
        if self.metric != "accuracy" or not self.windows:
            return None
        p = (self.scores["best"]["accuracy"] + self.scores[self.best_baseline()]["accuracy"]) / 2
        return 1.96 * math.sqrt(2 * p * (1 - p) / self.windows)

    def verdict(self, cell: str) -> str:
        """One plain sentence: does the best recurrent model beat the best baseline?"""
        base = self.best_baseline()
        model, other = self.scores["best"][self.metric], self.scores[base][self.metric]
        head = f"The best recurrent model ({cell}, test {self.metric} {model:.4f})"
        noise = self.accuracy_noise()
        if noise is not None and abs(model - other) < noise:
            return (f"{head} is level with the best baseline ({base}, test {self.metric} {other:.4f}): the "
                    f"difference, {model - other:+.4f}, is within the sampling error of {self.windows} test "
                    f"examples (+/-{noise:.4f} at 95%).")
        word = "beats" if self.model_wins() else "does NOT beat"
        return f"{head} {word} the best baseline ({base}, test {self.metric} {other:.4f})."
