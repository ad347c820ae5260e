"""Keras Tuner, adapted: the hypermodel, the oracle and tuner mixins, and how they are made.

Keras Tuner decides what to try (its oracle) and how to train (its `Tuner`); the hypermodel
turns the sampled ``hp`` into a `ModelSpec` (through the sweep) and builds it with
`build_model`. The mixins give every cell type its turn, open and close one tracked run per
trial (through the sweep), stop at ``max_trials`` or the time budget (Hyperband has no trial
limit of its own), and let each trial's training graph go when it ends.
"""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt

from lstm_models.config import SweepSpec
from lstm_models.models import build_model
from lstm_models.state import TUNER_PROJECT

TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}
ORACLES = {"random": kt.oracles.RandomSearchOracle, "bayesian": kt.oracles.BayesianOptimizationOracle,
           "hyperband": kt.oracles.HyperbandOracle}
INTERRUPTED = "interrupted: the sweep was stopped while this trial ran; not rerun"


class SweepHyperModel(kt.HyperModel):
    def __init__(self, sweep):
        super().__init__()
        self.sweep = sweep

    def build(self, hp):
        return build_model(self.sweep.model_spec(hp), self.sweep.inputs, jit_compile=self.sweep.spec.tuner.jit_compile)

    def fit(self, hp, model, *args, epochs=1, initial_epoch=0, callbacks=(), **kwargs):
        spec = self.sweep.model_spec(hp)
        trial = self.sweep.current
        if trial is not None:
            trial.n_params = model.count_params()
        seed = self.sweep.spec.tuner.seed + (trial.number if trial else 0)
        train = self.sweep.pipeline("train", spec, shuffle_seed=seed)
        val = self.sweep.pipeline("val", spec)
        callbacks = list(callbacks) + self.sweep.callbacks(epochs)
        return model.fit(train, validation_data=val, epochs=epochs, initial_epoch=initial_epoch,
                         callbacks=callbacks, verbose=0, shuffle=False)  # the pipeline shuffles


class _BalancedCells:
    """Mixed into an oracle: new trials take the cell types in turn.

    The cell stays a searched choice in the space (the oracle records it, a Bayesian oracle
    models it), but a few trials drawn at random can miss a cell type entirely, and then the
    sweep cannot compare cells. So each new configuration gets the next cell in rotation; the
    other hyperparameters are drawn by the oracle as usual, and those that the new cell makes
    active or inactive (``unit_forget_bias``) are filled in or dropped. Hyperband's continued
    trials keep their cell.
    """

    def populate_space(self, trial_id):
        out = super().populate_space(trial_id)
        values = out.get("values")
        cell = next((h for h in self.hyperparameters.space if h.name == "cell"), None)
        if not values or "tuner/trial_id" in values or cell is None or not hasattr(cell, "values"):
            return out
        started = sum("tuner/trial_id" not in t.hyperparameters.values for t in self.trials.values())
        values["cell"] = cell.values[started % len(cell.values)]
        hps = kt.HyperParameters()
        filled = {}
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            hps.values.update(filled)
            if hps.is_active(hp):
                filled[hp.name] = values[hp.name] if hp.name in values else hp.random_sample(self._seed_state)
                self._seed_state += 1
        out["values"] = {**filled, **{k: v for k, v in values.items() if k.startswith("tuner/")}}
        return out


class _TrackedTuner:
    """Mixed into a Keras Tuner class: one tracked run per trial, a trial limit, a time budget.

    Creating a trial (oracle files), opening its run and recording it in the state file happen
    in one held section of the sweep's `Deferral`, and so does ending it: a signal that
    arrives meanwhile takes effect right after, so the three records always agree.
    """

    def __init__(self, oracle, hypermodel, sweep, **kwargs):
        self._sweep = sweep
        self._held = False
        self._gradients: set[str] = set()
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)  # our oracle, not the class's

    def pre_create_trial(self):
        super().pre_create_trial()
        self._sweep.check_limits()
        if not self._held:  # an IDLE answer from Hyperband's oracle loops back here
            self._held = True
            self._sweep.guard.enter()

    def _release(self):
        if self._held:
            self._held = False
            self._sweep.guard.leave()

    def load_model(self, trial):
        """The trial's best checkpoint."""
        return self._restore(self._try_build(trial.hyperparameters), trial.trial_id)

    def _build_hypermodel(self, hp):
        if "tuner/trial_id" not in hp.values:
            return super()._build_hypermodel(hp)
        # A Hyperband trial continued from an earlier one: its weights and optimizer state.
        return self._restore(kt.Tuner._build_hypermodel(self, hp), hp.values["tuner/trial_id"])

    def _restore(self, model, trial_id: str):
        model.optimizer.build(model.trainable_variables)  # so that its saved state loads too
        model.load_weights(self._get_checkpoint_fname(trial_id))
        return model

    def on_trial_begin(self, trial):
        self._gradients = custom_gradients()
        try:
            super().on_trial_begin(trial)
            keras.backend.clear_session()
            self._sweep.begin_trial(trial)
        finally:
            self._release()

    def on_trial_end(self, trial):
        with self._sweep.guard.hold():
            try:
                super().on_trial_end(trial)
            finally:
                self._sweep.end_trial(self.oracle.get_trial(trial.trial_id))
                forget_custom_gradients(self._gradients)
        self._sweep.check_failures()

    def on_search_end(self):
        self._release()
        super().on_search_end()


class SearchDone(Exception):
    """Raised before a new trial once the sweep's trial limit or time budget is reached."""


def _gradient_registry() -> dict:
    try:
        from tensorflow.python.framework import ops

        return ops._gradient_registry._registry
    except (ImportError, AttributeError):  # a TensorFlow without it: nothing to clean
        return {}


def custom_gradients() -> set[str]:
    return {k for k in _gradient_registry() if k.startswith("CustomGradient-")}


def forget_custom_gradients(before: set[str]) -> None:
    """Drop the gradient functions a trial's train step registered in TensorFlow's global registry.

    Each ``tf.custom_gradient`` traced in graph mode registers a uniquely named gradient function
    there, and nothing ever removes it; its closure holds the whole train-step graph. That was
    the sweep's memory leak (about 18 MiB per tiny trial, see benchmarks/soak.py). Once a trial
    has ended nothing differentiates its graphs again, so its entries can go.
    """
    registry = _gradient_registry()
    for key in custom_gradients() - before:
        registry.pop(key, None)


def close_unended(oracle) -> set[str]:
    """End, as FAILED, the oracle's trials that a stopped process left running; return their ids.

    Keras Tuner's reload puts them on its retry queue, which would rerun them: an interrupted
    trial is closed instead (our runs record why), and counts towards ``max_trials``.
    """
    running = kt.engine.trial.TrialStatus.RUNNING
    ids = set(oracle._retry_queue) | {t.trial_id for t in oracle.trials.values() if t.status == running}
    oracle._retry_queue = []
    for trial_id in sorted(ids):
        trial = oracle.trials[trial_id]
        if trial.status in (kt.engine.trial.TrialStatus.COMPLETED, kt.engine.trial.TrialStatus.FAILED):
            ids.discard(trial_id)  # it ended; only the oracle file missed it
        else:
            trial.status = kt.engine.trial.TrialStatus.FAILED
            trial.message = INTERRUPTED
        if trial_id not in oracle.end_order:
            oracle.end_order.append(trial_id)
        oracle._save_trial(trial)
    oracle.save()
    return ids


def make_tuner(spec: SweepSpec, sweep, folder: Path):
    """Keras Tuner on ``folder/tuner``: reloaded only when resuming (`check_start` made sure)."""
    t = spec.tuner
    bases = (_BalancedCells, ORACLES[t.kind]) if t.balance_cells else (ORACLES[t.kind],)
    oracle_cls = type(f"Sweep{ORACLES[t.kind].__name__}", bases, {})
    # Our own count of failures in a row replaces Keras Tuner's, which counts over the whole
    # history and would stop a resumed sweep at once.
    common = dict(objective=kt.Objective(spec.objective, direction=spec.direction), seed=t.seed,
                  max_retries_per_trial=0, max_consecutive_failed_trials=None)
    if t.kind == "hyperband":
        # Brackets repeat until max_trials trials have run (pre_create_trial stops the search).
        oracle = oracle_cls(max_epochs=t.max_epochs, factor=t.factor, hyperband_iterations=0, **common)
    else:
        oracle = oracle_cls(max_trials=t.max_trials, **common)
    tuner_cls = type(f"Tracked{TUNERS[t.kind].__name__}", (_TrackedTuner, TUNERS[t.kind]), {})
    # No overwrite: never a silent delete.
    return tuner_cls(oracle, SweepHyperModel(sweep), sweep=sweep, directory=str(folder),
                     project_name=TUNER_PROJECT, overwrite=False)
