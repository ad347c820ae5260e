"""Where a sweep's time goes: each trial's phases and the sweep's, logged as ``time/<phase>_s``.

A trial's clock starts when the tuner asks its oracle for the trial and stops when the trial's
run closes. Its phases:

- ``build``: building and compiling the model (and a continued Hyperband trial's parent weights);
- ``trace``: the first batch of the first epoch, and of its first validation, beyond their epoch's
  mean batch: TensorFlow tracing the train and test steps;
- ``train`` and ``validate``: the epochs' batches, less the trace;
- ``checkpoint``: keeping the best epoch's weights (copied in memory, written once when the fit ends);
- ``tracking``: opening the run and logging each epoch;
- ``tuner``: the rest: the oracle choosing the trial (a Gaussian process, a Hyperband bracket),
  reporting epochs to it, the data pipeline, Keras Tuner's own bookkeeping.

A sweep's phases (its parent run's): ``data`` (loading), ``inputs`` (vocabulary or
normalisation statistics), ``search``, then ``test``, ``export``, ``baselines``, ``verdict``,
``report``, ``register``, ``views``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

import keras

TRIAL_PHASES = ("build", "trace", "train", "validate", "checkpoint", "tracking", "tuner")
SWEEP_PHASES = ("data", "inputs", "search", "test", "export", "baselines", "verdict", "report", "register", "views")
PREFIX = "time/"


def metric(phase: str) -> str:
    """The MLflow metric of a phase: ``time/build_s``."""
    return f"{PREFIX}{phase}_s"


class Phases:
    """Seconds per named phase, from one clock; ``rest`` takes what no phase claimed; ``names``
    are always reported, 0 if never timed (a failed trial's, a sweep that registers nothing)."""

    def __init__(self, rest: str | None = None, names: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.perf_counter):
        self.rest, self.names, self.clock = rest, names, clock
        self.started = clock()
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(0.0, seconds)

    @contextmanager
    def timed(self, phase: str):
        start = self.clock()
        try:
            yield
        finally:
            self.add(phase, self.clock() - start)

    def metrics(self) -> dict[str, float]:
        """``time/<phase>_s`` of every phase so far, the ``rest`` one up to now included."""
        out = {**dict.fromkeys(self.names, 0.0), **self.seconds}
        if self.rest is not None:
            out[self.rest] = max(0.0, self.clock() - self.started - sum(self.seconds.values()))
        return {metric(k): v for k, v in out.items()}


def trial_totals(trials: list[dict[str, float]]) -> dict[str, float]:
    """Each trial phase's seconds, summed over ``trials`` (their ``time/<phase>_s`` metrics)."""
    return {p: sum(t.get(metric(p), 0.0) for t in trials) for p in TRIAL_PHASES}


def outside_epochs(totals: dict[str, float]) -> float | None:
    """The share of trials' time outside their epochs' batches: the trace counts as outside."""
    whole = sum(totals.values())
    return 1 - (totals["train"] + totals["validate"]) / whole if whole > 0 else None


class EpochClock(keras.callbacks.Callback):
    """The first of a fit's callbacks: splits each epoch into training and validation, and takes
    the first batch's excess over its epoch's mean batch (the step's trace) out of both.

    ``ended`` is when the epoch's batches ended: the callbacks after this one (the checkpoint)
    time themselves from it.
    """

    def __init__(self, phases: Phases):
        super().__init__()
        self.phases, self.ended = phases, 0.0
        self._traced = {"train": False, "validate": False}
        self._marks: dict[str, float] = {}

    def _begin(self, part: str) -> None:
        self._marks = {**self._marks, part: self.phases.clock(), "first": 0.0, "batches": 0}

    def _batch_end(self, part: str, batch: int) -> None:
        if batch == 0:
            self._marks["first"] = self.phases.clock() - self._marks[part]
        self._marks["batches"] = batch + 1

    def _end(self, part: str) -> None:
        seconds, first, n = self.phases.clock() - self._marks[part], self._marks["first"], self._marks["batches"]
        trace = 0.0
        if not self._traced[part]:  # the step is traced in the fit's first epoch only
            trace = max(0.0, first - (seconds - first) / (n - 1)) if n > 1 else 0.0
            self._traced[part] = True
        self.phases.add("trace", trace)
        self.phases.add(part, seconds - trace)

    def on_epoch_begin(self, epoch, logs=None):
        self._begin("train")

    def on_train_batch_end(self, batch, logs=None):
        self._batch_end("train", batch)

    def on_test_begin(self, logs=None):
        if "train" in self._marks and "validate" not in self._marks:  # fit's validation, not a later evaluate
            self._end("train")
        self._begin("validate")

    def on_test_batch_end(self, batch, logs=None):
        self._batch_end("validate", batch)

    def on_test_end(self, logs=None):
        self._end("validate")

    def on_epoch_end(self, epoch, logs=None):
        if "validate" not in self._marks:  # an epoch without validation
            self._end("train")
        self._marks = {}
        self.ended = self.phases.clock()



def summary(sweep: dict[str, float], trials: list[dict[str, float]]) -> str:
    """One line: the sweep's phases in seconds, its trials' phases as shares of the trials' time.

    Args:
        sweep: the parent run's ``time/<phase>_s``. trials: each timed trial's.
    """
    totals = trial_totals(trials)
    outside, whole = outside_epochs(totals), sum(totals.values())
    parts = []
    for phase in SWEEP_PHASES:
        if metric(phase) in sweep:
            parts.append(f"{phase} {sweep[metric(phase)]:.0f}s")
        if phase == "search" and outside is not None:
            shares = ", ".join(f"{p} {totals[p] / whole:.0%}" for p in TRIAL_PHASES)
            parts[-1] += f" ({len(trials)} trials: {shares}; {outside:.0%} outside their epochs)"
    return "Time: " + ", ".join(parts)
