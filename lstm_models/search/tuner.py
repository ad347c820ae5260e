"""Keras Tuner, adapted: with the chief's oracle (`lstm_models.search.oracle`) and its gRPC service
(`lstm_models.search.service`), the only modules that use private Keras Tuner or TensorFlow members
(each names the public gap it fills; `tests/test_tuner.py` fails loudly if a release changes one).
The mixins give every cell type its turn, hand each trial to the recorder and the limits, hold
interrupts while a trial's records (oracle, state file, MLflow) change, write Keras Tuner's files
whole, let each trial's graph go.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import keras
import keras_tuner as kt
from keras_tuner.src.engine.stateful import Stateful
from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

from lstm_models.errors import TrackingLost
from lstm_models.interrupt import Deferral
from lstm_models.search.hypermodel import BestEpoch, EpochLog, SweepHyperModel
from lstm_models.search.limits import Limits
from lstm_models.search.pruning import COMPLETED, Pruned, report_epoch, taken, taken_line
from lstm_models.search.recorder import TrialRecorder
from lstm_models.search.space import trial_seed
from lstm_models.search.state import TUNER_PROJECT, write_whole
from lstm_models.search.timing import TRIAL_PHASES, EpochClock, Phases
from lstm_models.search.trial_runs import fetch_checkpoint
from lstm_models.search.warm import TracedModels
from lstm_models.spec.sections import TUNERS
from lstm_models.spec.sweep import TunerSpec

KERAS_TUNERS = {"random": (kt.RandomSearch, kt.oracles.RandomSearchOracle),
                "bayesian": (kt.BayesianOptimization, kt.oracles.BayesianOptimizationOracle),
                "hyperband": (kt.Hyperband, kt.oracles.HyperbandOracle)}
assert set(KERAS_TUNERS) == set(TUNERS), "every tuner kind a spec accepts has its Keras Tuner classes"
# Each epoch's objective goes to the oracle (`report_epoch`, for the pruner), so Keras Tuner finds
# the trial's metrics already reported and skips its own final report, with this warning.
warnings.filterwarnings("ignore", message="The use case of calling", category=DeprecationWarning)


class _WholeFiles(Stateful):
    """Last before Keras Tuner's private `Stateful` in our oracles and tuners: ``oracle.json``,
    ``tuner0.json`` (and by `_WholeTrialFiles` each ``trial.json``) are written whole. Keras Tuner
    rewrites them in place: a ``kill -9`` in mid-write left an empty file no resume could read."""

    def save(self, fname):
        write_whole(fname, json.dumps(self.get_state()))


class _WholeTrialFiles:
    """Mixed into an oracle: its private `_save_trial`, its only writer of a trial's file."""

    def _save_trial(self, trial):
        write_whole(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), json.dumps(trial.get_state()))


class _BalancedCells:
    """Mixed into an oracle: new trials take the cell types in turn.

    The cell stays a searched choice in the space (the oracle records it, a Bayesian oracle
    models it), but a few trials drawn at random can miss a cell type entirely, and then the
    sweep cannot compare cells. So each new configuration gets the next cell in rotation; the
    others are drawn by the oracle as usual, those the new cell makes active or inactive
    (``unit_forget_bias``) filled in or dropped. Hyperband's continued trials keep their cell.
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
                # Private `_seed_state`: the oracle's own sampling counter (no public way to draw
                # a value from its random stream); sharing it keeps a seeded sweep repeatable.
                filled[hp.name] = values[hp.name] if hp.name in values else hp.random_sample(self._seed_state)
                self._seed_state += 1
        out["values"] = {**filled, **{k: v for k, v in values.items() if k.startswith("tuner/")}}
        return out


class _TrackedTuner:
    """Mixed into a Keras Tuner class: each trial goes through the recorder and the limits.

    Creating a trial (oracle files), opening its run and recording it in the state file happen
    in one held section of the sweep's `Deferral`, and so does ending it: a signal that
    arrives meanwhile takes effect right after, so the three records always agree.
    """

    def __init__(self, oracle, hypermodel: SweepHyperModel, recorder: TrialRecorder, limits: Limits,
                 guard: Deferral, seed: int, heartbeat: float | None = None, **kwargs):
        self._recorder, self._limits, self._guard, self._seed = recorder, limits, guard, seed
        self._heartbeat, self._beat = heartbeat, None  # a worker's: seconds between beats, the beating thread
        self._held = False
        self._gradients: set[str] = set()
        self._spec, self._trial_seed = None, 0  # the running trial's ModelSpec and seed, from on_trial_begin
        self._phases: Phases | None = None  # the next or running trial's clock (`lstm_models.search.timing`)
        self._model, self._traced = None, TracedModels()  # the running trial's model; those a trial may continue
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)  # our oracle, not the class's

    def pre_create_trial(self):
        super().pre_create_trial()
        self._limits.before_trial(self._recorder)
        if self._held:  # the oracle answered IDLE (Hyperband's bracket, or a chief waiting on its last trials)
            time.sleep(1.0)
            self._guard.give_up()  # waiting changes no record: an interrupt stops it (or it waits out the tail)
            self._phases = None  # waiting is no trial's time
        else:
            self._held = True
            self._guard.enter()
        self._trial_phases()  # the trial's clock starts before the oracle chooses it

    def _release(self):
        if self._held:
            self._held = False
            self._guard.leave()

    def on_trial_begin(self, trial):
        self._gradients = custom_gradients()
        if self._heartbeat:
            from lstm_models.search.calls import Heartbeat

            self._beat = Heartbeat(self.oracle, trial.trial_id, self._heartbeat)
        try:
            super().on_trial_begin(trial)  # Keras Tuner clears the session when it builds the model
            hp = trial.hyperparameters
            self._trial_seed = trial_seed(self._seed, hp.values)  # whoever runs it, whenever
            keras.utils.set_random_seed(self._trial_seed)
            self._spec = self.hypermodel.model_spec(hp.copy())
            budget = hp.values.get("tuner/epochs")
            note = f" (hyperband: epochs {hp.values['tuner/initial_epoch']}->{budget})" if budget else ""
            with self._trial_phases().timed("tracking"):
                self._recorder.begin(trial.trial_id, self._spec,
                                     {k: v for k, v in hp.values.items() if k.startswith("tuner/")}, note)
        finally:
            self._release()

    def run_trial(self, trial, *args, **kwargs):
        seed, clock = self._trial_seed, EpochClock(self._trial_phases())
        # Each epoch is reported to the oracle (for the pruner); a worker's oracle is its chief's.
        kwargs.update(model_spec=self._spec, shuffle_seed=seed + 1, clock=clock,
                      extra_callbacks=[EpochLog(self._recorder, lambda epoch, logs: report_epoch(
                          self.oracle, trial.trial_id, logs, epoch), clock)])
        with self._guard.unmasking():  # not a failed trial, but a stop that TensorFlow reworded
            try:
                return super().run_trial(trial, *args, **kwargs)
            except TrackingLost as exc:  # nor is this: Keras Tuner lets its FatalError stop the search
                raise _LostInTrial(str(exc)) from None

    def _build_and_fit_model(self, trial, *args, **kwargs):
        # Private hook ("for AutoKeras to override"), the one through which `run_trial` hands its
        # callbacks to the fit: Keras Tuner's best-epoch checkpoint becomes one written once.
        ours = (lambda: not taken(self.oracle.get_trial(trial.trial_id))) if self._heartbeat else None  # a worker's
        kwargs["callbacks"] = [BestEpoch(c.objective, c.filepath, self._trial_phases(), ours)
                               if isinstance(c, SaveBestEpoch) else c for c in kwargs.get("callbacks", [])]
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def _build_hypermodel(self, hp):
        # Private hook: Keras Tuner's `_try_build` calls it for every trial; overriding it is the
        # only way to build the trial's already-sampled spec, and to continue a Hyperband trial
        # from its parent's weights *and optimizer state* (kt.Hyperband restores weights only).
        with self._trial_phases().timed("build"):
            model = self.hypermodel.build_spec(self._spec) if self._spec is not None else self.hypermodel.build(hp)
            if "tuner/trial_id" in hp.values:
                model = restore(self, self._traced.take(hp.values["tuner/trial_id"], model), hp.values["tuner/trial_id"])
        self._model = model
        return model

    def _trial_phases(self) -> Phases:
        if self._phases is None:  # a trial Keras Tuner started without pre_create_trial
            self._phases = Phases(rest="tuner", names=TRIAL_PHASES)
        return self._phases

    def on_trial_end(self, trial):
        with self._guard.hold():
            try:
                super().on_trial_end(trial)
            finally:
                self._spec = None
                ended = self.oracle.get_trial(trial.trial_id)
                gone = taken(ended)  # a worker's trial its chief gave to another worker (and whose run it closed)
                ok = ended.status == COMPLETED and not gone
                message = "" if ok else (ended.message or trial.message or "")  # a worker's comes from its own trial
                # best_step is an epoch `report_epoch` reported: Keras's own count, which in a continued
                # Hyperband trial already starts at tuner/initial_epoch.
                best = ended.best_step if ok else None
                # Hyperband's trials only (a worker's oracle is a client: the spec says the epochs)
                epochs, most = trial.hyperparameters.values.get("tuner/epochs"), self.hypermodel.spec.tuner.max_epochs
                if ok and self._model is not None and epochs is not None and epochs < most:
                    self._traced.add(trial.trial_id, self._model)  # a later round may continue it
                self._model = None
                shared = self._get_checkpoint_fname(trial.trial_id) if ok and self._heartbeat else None
                timing, self._phases = self._trial_phases().metrics(), None
                if gone:
                    self._recorder.drop(taken_line(trial.trial_id))
                else:
                    self._recorder.end(ended.score if ok else None, best, message, checkpoint=shared, timing=timing)
                forget_custom_gradients(self._gradients)
                self._stop_beat()
        self._limits.after_trial(self._recorder)

    def _stop_beat(self):
        if self._beat is not None:
            self._beat.stop()
            self._beat = None

    def on_search_end(self):
        self._traced.clear()
        self._release()
        self._stop_beat()
        super().on_search_end()

    def load_model(self, trial):
        """The trial's best checkpoint, in a fresh Keras session."""
        keras.backend.clear_session()  # it collects garbage too
        return restore(self, self.hypermodel.build(trial.hyperparameters), trial.trial_id)


class _LostInTrial(TrackingLost, kt.errors.FatalError):
    pass


def restore(tuner, model, trial_id: str):
    """Load a trial's best checkpoint (weights and optimizer state) into ``model``, built by
    `build_model` (its optimizer built, so that its saved state loads too)."""
    # Private `_get_checkpoint_fname`: where Keras Tuner saved the best epoch (its `load_model` loads weights only)
    path = Path(tuner._get_checkpoint_fname(trial_id))
    if not path.exists():  # trained by a worker on another host: from its run (a worker waits its timeout for it)
        fetch_checkpoint(tuner._recorder, trial_id, path, wait=4 * (tuner._heartbeat or 0.0))
    model.load_weights(str(path))
    return model


def _gradient_registry() -> dict:
    # Private `ops._gradient_registry`: TensorFlow has no public way to drop a gradient function.
    try:
        from tensorflow.python.framework import ops

        return ops._gradient_registry._registry
    except (ImportError, AttributeError):  # a TensorFlow without it: nothing to clean
        return {}


def custom_gradients() -> set[str]:
    return {k for k in _gradient_registry() if k.startswith("CustomGradient-")}


def forget_custom_gradients(before: set[str]) -> None:
    """Drop the gradient functions a trial's train step registered in TensorFlow's global registry:
    each ``tf.custom_gradient`` traced in graph mode adds one, never removed, holding the train-step
    graph (the sweep's memory leak, ~18 MiB per tiny trial: benchmarks/soak.py)."""
    registry = _gradient_registry()
    for key in custom_gradients() - before:
        registry.pop(key, None)


ROLES = ("single", "chief", "worker")


def make_tuner(t: TunerSpec, objective: kt.Objective, hypermodel: SweepHyperModel, recorder: TrialRecorder,
               limits: Limits, guard: Deferral, folder: Path, role: str = "single"):
    """Keras Tuner on ``folder/tuner``: reloaded only when resuming (`check_start` made sure).

    ``role``: ``single`` trains in this process; ``chief`` serves its oracle to workers (which
    caps the trials itself and hears their heartbeats); ``worker`` trains what a chief hands
    out, sends heartbeats, and logs each trial's best checkpoint to the trial's run, so that no
    host needs another's files.
    """
    from lstm_models.search.oracle import Watched

    tuner_base, oracle_base = KERAS_TUNERS[t.kind]
    bases = ((Watched,) if role == "chief" else ()) + (_WholeTrialFiles, Pruned) \
        + ((_BalancedCells,) if t.balance_cells else ()) + (oracle_base, _WholeFiles)
    oracle_cls = type(f"Sweep{oracle_base.__name__}", bases, {"pruning": hypermodel.spec.pruning,
                                                              **({"trial_cap": t.max_trials} if role == "chief" else {})})
    # Our own count of failures in a row replaces Keras Tuner's, which counts over the whole
    # history and would stop a resumed sweep at once.
    common = dict(objective=objective, seed=t.seed, max_retries_per_trial=0, max_consecutive_failed_trials=None)
    if t.kind == "hyperband":
        # Brackets repeat until max_trials trials have run (pre_create_trial stops the search).
        oracle = oracle_cls(max_epochs=t.max_epochs, factor=t.factor, hyperband_iterations=0, **common)
    else:
        oracle = oracle_cls(max_trials=t.max_trials, **common)
    tuner_cls = type(f"Tracked{tuner_base.__name__}", (_TrackedTuner, tuner_base, _WholeFiles), {})
    beat = max(1.0, t.worker_timeout / 4) if role == "worker" else None
    # No overwrite: never a silent delete.
    tuner = tuner_cls(oracle, hypermodel, recorder=recorder, limits=limits, guard=guard, seed=t.seed, heartbeat=beat,
                      directory=str(folder), project_name=TUNER_PROJECT, overwrite=False)
    return tuner
