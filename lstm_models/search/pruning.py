"""The median pruner: a trial whose epoch is worse than the median of the ended trials stops.

Keras Tuner 1.4.8 has no pruning: `Tuner.on_epoch_end` is empty and `Oracle.update_trial` only
records (its comment plans a ``STOPPED`` answer, never implemented). Here the tuner reports every
epoch's objective to the oracle (`report_epoch`), and the oracle (`Pruned`,
mixed into every kind) answers ``STOPPED`` when the rule says so. The answer travels back through
Keras Tuner's gRPC service to a worker, so the decision always uses the chief's view of all
trials. The trial then ends as usual (COMPLETED, scored by its best epoch so far).
"""

from __future__ import annotations

import copy
import statistics

import keras_tuner as kt

from lstm_models.spec.sweep import PruningSpec

COMPLETED, FAILED = kt.engine.trial.TrialStatus.COMPLETED, kt.engine.trial.TrialStatus.FAILED  # a trial ended
STOPPED = kt.engine.trial.TrialStatus.STOPPED
# What the oracle's STOPPED answer carries (its metrics travel through gRPC; its message does not).
MEDIAN, ENDED = "pruning/median", "pruning/ended_trials"
TAKEN = "lstm-models/taken"  # in the chief's answer to a worker about a trial it no longer runs (`taken`)


def median_rule(pruning: PruningSpec, trials, trial_id: str, name: str, direction: str, step: int,
                value: float) -> tuple[float, int] | None:
    """Whether trial ``trial_id`` should stop after epoch ``step`` (0-based) with ``value``: the
    median it is worse than and how many ended trials gave it, or None.

    Args:
        pruning: the spec's rule (kind, warm-up trials and epochs).
        trials: the oracle's trials (``kt.engine.trial.Trial``); only the other ended ones count.
        name, direction: the objective (``val_accuracy``, ``max``).
    """
    if pruning.kind == "none" or step < pruning.warmup_epochs:
        return None
    others = [_value_at(t, name, step) for t in trials if t.trial_id != trial_id and t.status == COMPLETED]
    others = [v for v in others if v is not None]
    if len(others) < pruning.warmup_trials:
        return None
    median = statistics.median(others)
    worse = value < median if direction == "max" else value > median
    return (median, len(others)) if worse else None


class TrialTaken(kt.errors.FailedTrialError):
    """This worker's trial is not its own any more: its chief gave it up (the worker was silent,
    stopped, or cut off), closed its run and queued it for another worker."""


def taken(answer) -> bool:
    """Whether the chief's answer about a trial says the asking worker no longer runs it
    (`lstm_models.search.oracle.Watched`: its metrics hold TAKEN)."""
    return answer.metrics.exists(TAKEN)


def taken_line(trial_id: str) -> str:
    return (f"trial {int(trial_id) + 1} went back to the chief's queue while this worker was not heard of "
            "(worker_timeout); the chief closed its run, and its epochs here are dropped")


def report_epoch(oracle, trial_id: str, logs: dict, step: int) -> str:
    """Report an epoch's objective to the oracle (a worker's: through gRPC); return why the trial
    must stop, or "" to go on. Raises `TrialTaken` when the chief gave the trial to another worker."""
    name = oracle.objective.name
    if name not in logs:
        return ""
    value = float(logs[name])
    answer = oracle.update_trial(trial_id, {name: value}, step=step)
    if taken(answer):
        raise TrialTaken(taken_line(trial_id))
    if answer.status != STOPPED:
        return ""
    median = answer.metrics.get_last_value(MEDIAN)
    ended = int(answer.metrics.get_last_value(ENDED))
    return f"{name} {value:.4f} is worse than the median {median:.4f} of {ended} ended trials at epoch {step + 1}"


def _value_at(trial, name: str, step: int) -> float | None:
    if not trial.metrics.exists(name):
        return None
    values = [obs.mean() for obs in trial.metrics.get_history(name) if obs.step == step]
    return values[-1] if values else None


class Pruned:
    """Mixed into an oracle: `update_trial` answers ``STOPPED`` (with the median and the number of
    trials behind it as the answer's metrics) when `median_rule` says so; the oracle's own record
    of the trial stays RUNNING until the trial ends."""

    pruning: PruningSpec = PruningSpec()  # make_tuner sets the spec's

    def update_trial(self, trial_id, metrics, step=0):
        trial = super().update_trial(trial_id, metrics, step)
        name = self.objective.name
        if name not in metrics:
            return trial
        rule = median_rule(self.pruning, list(self.trials.values()), trial_id, name, self.objective.direction,
                           int(step), float(metrics[name]))
        if rule is None:
            return trial
        answer = copy.copy(trial)  # the oracle's own record stays as it is
        answer.status, answer.metrics = STOPPED, type(trial.metrics)()  # an empty MetricsTracker
        for key, value in zip((MEDIAN, ENDED), rule):
            answer.metrics.update(key, float(value), step=step)
        return answer


def forget_metrics(trial) -> None:
    """A lost trial runs again from scratch: its partial epochs must not count twice."""
    trial.metrics = type(trial.metrics)()  # MetricsTracker is not in Keras Tuner's public API
